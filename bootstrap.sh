#!/usr/bin/env bash
# The Landfall lab: real Kafka (KRaft), RabbitMQ, HDFS (NameNode + DataNode), a Hive Metastore
# and Spark on one Debian 12 host. The same script provisions CI, a laptop and the Vagrant VM.
#
#   ./bootstrap.sh [up]            install what is missing, start everything, wait until healthy
#   ./bootstrap.sh status          each service's state and memory; exit 0 only if all healthy
#   ./bootstrap.sh stop            stop every service
#   ./bootstrap.sh start|restart|stop|kill SERVICE   kafka, rabbitmq, namenode, datanode,
#                                  hive-metastore
#                                  (kill = SIGKILL, for fault tests)
#   ./bootstrap.sh env             shell exports for the lab tools (eval "$(./bootstrap.sh env)")
#   ./bootstrap.sh hdfs dfs -ls /  Hadoop's FsShell (also: hdfs dfsadmin -report)
#   ./bootstrap.sh topic NAME [PARTITIONS]    create a Kafka topic (default 4 partitions)
#   ./bootstrap.sh produce TOPIC [COUNT]      produce COUNT sample click events (default 1000)
#   ./bootstrap.sh pyspark | spark-submit …   Spark with the lab's HDFS as default filesystem
#   ./bootstrap.sh demo [COUNT]    the main job: lab up, build Landfall, produce COUNT sample
#                                  clicks (default 100000), land them, query them with Spark
#   ./bootstrap.sh query [TABLE]   Spark query over a landed table (default /landing/clicks)
#   ./bootstrap.sh flink           install the benchmark's Flink SQL peer (PyFlink, connector
#                                  jars, Hadoop client) into .lab/flink; bench/run.py calls it
#   ./bootstrap.sh test [-- ARGS]  bring the lab up, then run the whole test suite, two test
#                                  binaries at a time (tests/run_suite.py; ARGS go to each)
#   ./bootstrap.sh faults [SEEDS] [CLASS,…]   the seeded fault matrix (tests/fault_matrix/),
#                                  SEEDS runs per class (default 1); 20 or more, all classes,
#                                  rewrites the table in docs/reliability.md
#
# All state, logs and downloads live under .lab/ (override with LANDFALL_LAB); `rm -rf .lab`
# resets the lab. Inside the Vagrant VM (LAB_SYSTEMD=1) the services run as systemd units.
set -euo pipefail

# ---- versions: the one place they are pinned -------------------------------------------------
KAFKA_VERSION=4.1.2
HADOOP_VERSION=3.5.0
HIVE_VERSION=4.0.1   # hive-standalone-metastore-server; vagrant/hive/pom.xml has the Hadoop pin too
PYSPARK_VERSION=4.3.0
CONFLUENT_KAFKA_VERSION=2.12.1
# The benchmark's Flink SQL peer (`./bootstrap.sh flink`, never part of `up`): PyFlink 2.2.0,
# because the newest Kafka SQL connector on Maven Central (5.0.0-2.2) is built for Flink 2.2 and
# Central's Flink 2.2 Parquet format (flink-parquet) exists only as 2.2.0.
PYFLINK_VERSION=2.2.0
FLINK_KAFKA_VERSION=5.0.0-2.2
KAFKA_CLUSTER_ID=bGFuZGZhbGwtbGFiLWthZg   # any 22-char base64 id; fixed so re-formats match

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=${LANDFALL_LAB:-$ROOT/.lab}
VAGRANT_DIR=$ROOT/vagrant
LOGS=$LAB/logs
RUN=$LAB/run
SYSTEMD=${LAB_SYSTEMD:-0}
# Services listen on loopback; the VM binds 0.0.0.0 so Vagrant's forwarded ports reach them.
BIND=${LAB_BIND:-127.0.0.1}
# Where the metastore puts managed tables and databases created without a location.
HIVE_WAREHOUSE=${LAB_HIVE_WAREHOUSE:-hdfs://127.0.0.1:9000/user/hive/warehouse}
SERVICES=(kafka rabbitmq namenode datanode hive-metastore)

export RABBITMQ_NODENAME=rabbit@localhost
export ERL_EPMD_ADDRESS=127.0.0.1
# On a plain host RabbitMQ runs as root with the lab's environment (rabbit_env); in the VM it
# runs under Debian's unit, whose /usr/sbin wrappers switch to the rabbitmq user and cookie.
RABBIT_SBIN=/usr/lib/rabbitmq/bin
[ "$SYSTEMD" = 1 ] && RABBIT_SBIN=/usr/sbin

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

java_home() {
  local j
  for j in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/java-17-openjdk; do
    [ -x "$j/bin/java" ] && { echo "$j"; return; }
  done
  dirname "$(dirname "$(readlink -f "$(command -v java)")")"
}

# ---- installation ----------------------------------------------------------------------------
APT_PACKAGES=(openjdk-17-jdk-headless maven rabbitmq-server kcat python3-venv python3-pip curl
  build-essential pkg-config zlib1g-dev libssl-dev libsasl2-dev shellcheck faketime chromium)

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "apt: installing ${missing[*]}"
  local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # Deny service starts during install: the lab starts RabbitMQ itself, with its own config.
  local had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ "$had_policy" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$had_policy" -eq 1 ] || $sudo rm -f /usr/sbin/policy-rc.d
}

# Resolves a pom's runtime dependencies into a lib dir of its own (Kafka's and Hadoop's jars
# must not mix). The stamp records the version so a bump re-resolves.
install_jars() { # name pom version-property version
  local name=$1 pom=$2 prop=$3 version=$4 lib=$LAB/$1/lib
  [ -f "$lib/.stamp" ] && [ "$(cat "$lib/.stamp")" = "$version" ] && return
  say "maven: resolving $name $version"
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$pom" "-D$prop=$version" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$LOGS/mvn-$name.log" 2>&1 \
    || die "maven could not resolve $name $version; see $LOGS/mvn-$name.log"
  echo "$version" >"$lib/.stamp"
}

# The metastore's schematool needs the Derby schema scripts, which ship only in the binary
# tarball (on Maven Central as the server's `bin` classifier): fetch it, keep the Derby scripts.
install_hive_scripts() {
  local dist=$LAB/hive/dist tmp=$LAB/hive/tmp
  [ -f "$dist/.stamp" ] && [ "$(cat "$dist/.stamp")" = "$HIVE_VERSION" ] && return
  say "maven: fetching the Hive Metastore $HIVE_VERSION schema scripts"
  rm -rf "$dist" "$tmp"; mkdir -p "$dist" "$tmp"
  mvn -q -B -f "$VAGRANT_DIR/hive/pom.xml" dependency:copy \
    "-Dartifact=org.apache.hive:hive-standalone-metastore-server:$HIVE_VERSION:tar.gz:bin" \
    -DoutputDirectory="$tmp" >"$LOGS/mvn-hive-scripts.log" 2>&1 \
    || die "maven could not fetch the Hive Metastore $HIVE_VERSION tarball; see $LOGS/mvn-hive-scripts.log"
  tar xzf "$tmp"/*.tar.gz -C "$dist" --strip-components=1 --wildcards '*/scripts/metastore/upgrade/derby/*' \
    || die "no Derby schema scripts in the Hive Metastore $HIVE_VERSION tarball"
  rm -rf "$tmp"
  echo "$HIVE_VERSION" >"$dist/.stamp"
}

install_venv() {
  local stamp=$LAB/venv/.stamp want="pyspark==$PYSPARK_VERSION confluent-kafka==$CONFLUENT_KAFKA_VERSION"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return
  say "pip: installing $want"
  /usr/bin/python3 -m venv "$LAB/venv"
  # shellcheck disable=SC2086
  "$LAB/venv/bin/pip" install -q --disable-pip-version-check $want >"$LOGS/pip.log" 2>&1 \
    || die "pip could not install $want; see $LOGS/pip.log"
  echo "$want" >"$stamp"
}

# The Flink SQL peer of bench/run.py, only when asked (`./bootstrap.sh flink`; run.py asks when
# the `flink` contender runs): a venv of its own in .lab/flink/venv (apache-flink pins
# apache-beam, pandas < 2.3 and pyarrow < 21, which must not move the lab venv's pyspark), the
# Kafka connector and Parquet format in .lab/flink/lib, Hadoop's shaded client in
# .lab/flink/hadoop. About 1 GB; the tests never need it.
install_flink() {
  mkdir -p "$LOGS"
  install_apt   # Java, Maven and python3-venv, when `flink` runs before any `up`
  local want="apache-flink==$PYFLINK_VERSION" stamp=$LAB/flink/venv/.stamp t0=$SECONDS
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "pip: installing $want into $LAB/flink/venv (about a minute)"
    rm -rf "$LAB/flink/venv"
    /usr/bin/python3 -m venv "$LAB/flink/venv"
    "$LAB/flink/venv/bin/pip" install -q --disable-pip-version-check "$want" >"$LOGS/pip-flink.log" 2>&1 \
      || die "pip could not install $want; see $LOGS/pip-flink.log"
    echo "$want" >"$stamp"
  fi
  local jars="flink $PYFLINK_VERSION kafka $FLINK_KAFKA_VERSION" lib=$LAB/flink/lib
  if [ ! -f "$lib/.stamp" ] || [ "$(cat "$lib/.stamp")" != "$jars" ]; then
    say "maven: resolving the Flink Kafka connector $FLINK_KAFKA_VERSION and flink-parquet $PYFLINK_VERSION"
    rm -rf "$lib"; mkdir -p "$lib"
    mvn -q -B -f "$VAGRANT_DIR/flink/pom.xml" "-Dflink.version=$PYFLINK_VERSION" \
      "-Dflink.kafka.version=$FLINK_KAFKA_VERSION" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$lib" >"$LOGS/mvn-flink.log" 2>&1 \
      || die "maven could not resolve the Flink jars; see $LOGS/mvn-flink.log"
    echo "$jars" >"$lib/.stamp"
  fi
  lib=$LAB/flink/hadoop
  if [ ! -f "$lib/.stamp" ] || [ "$(cat "$lib/.stamp")" != "$HADOOP_VERSION" ]; then
    say "maven: resolving Hadoop's client $HADOOP_VERSION for Flink"
    rm -rf "$lib"; mkdir -p "$lib"
    mvn -q -B -f "$VAGRANT_DIR/flink/hadoop-pom.xml" "-Dhadoop.version=$HADOOP_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" >"$LOGS/mvn-flink-hadoop.log" 2>&1 \
      || die "maven could not resolve Hadoop's client for Flink; see $LOGS/mvn-flink-hadoop.log"
    echo "$HADOOP_VERSION" >"$lib/.stamp"
  fi
  # PyFlink starts its JVM itself: JAVA_HOME picks Java 17; HADOOP_CLASSPATH and HADOOP_CONF_DIR
  # (PyFlink appends both to the JVM's classpath) give Flink its hdfs:// file system; Flink's own
  # slf4j binding stays the only one. FLINK_LOG_DIR keeps Flink's log file out of the venv.
  mkdir -p "$LAB/bin"
  cat >"$LAB/bin/flink-python" <<EOF
#!/usr/bin/env bash
# PyFlink $PYFLINK_VERSION (local mini-cluster) with Hadoop $HADOOP_VERSION's client for the lab's HDFS.
export JAVA_HOME="$(java_home)" HADOOP_CONF_DIR="$LAB/hadoop/conf"
export HADOOP_CLASSPATH="\$(ls "$LAB"/flink/hadoop/*.jar | grep -v slf4j-api | tr '\n' :)"
export FLINK_LOG_DIR="\${FLINK_LOG_DIR:-$LOGS}"
exec "$LAB/flink/venv/bin/python" "\$@"
EOF
  chmod +x "$LAB/bin/flink-python"
  [ $((SECONDS - t0)) -lt 2 ] || say "flink: PyFlink $PYFLINK_VERSION ready in $((SECONDS - t0))s"
}

render() { # template destination
  sed -e "s|@LAB@|$LAB|g" -e "s|@KAFKA_BIND@|$BIND|g" -e "s|@HDFS_BIND@|$BIND|g" \
      -e "s|@RABBIT_BIND@|$BIND|g" -e "s|@HIVE_BIND@|$BIND|g" -e "s|@HIVE_WAREHOUSE@|$HIVE_WAREHOUSE|g" \
      "$VAGRANT_DIR/templates/$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}

write_configs() {
  mkdir -p "$LAB/kafka/data" "$LAB/hadoop/conf" "$LAB/hadoop/name" "$LAB/hadoop/data" \
    "$LAB/rabbitmq" "$LAB/spark/conf" "$LAB/hive/conf" "$LAB/bin" "$LOGS" "$RUN"
  render kafka-server.properties "$LAB/kafka/server.properties"
  render kafka-log4j2.properties "$LAB/kafka/log4j2.properties"
  render core-site.xml "$LAB/hadoop/conf/core-site.xml"
  render hdfs-site.xml "$LAB/hadoop/conf/hdfs-site.xml"
  render hadoop-log4j.properties "$LAB/hadoop/conf/log4j.properties"
  render rabbitmq.conf "$LAB/rabbitmq/rabbitmq.conf"
  render spark-defaults.conf "$LAB/spark/conf/spark-defaults.conf"
  render hive-metastore-site.xml "$LAB/hive/conf/metastore-site.xml"
  render hive-metastore-log4j2.properties "$LAB/hive/conf/metastore-log4j2.properties"
  echo '[rabbitmq_management,rabbitmq_auth_mechanism_ssl].' >"$LAB/rabbitmq/enabled_plugins"
  write_tls
  write_tools
}

# A lab CA, a server certificate for localhost/127.0.0.1 (RabbitMQ's TLS listener on 5671) and
# a client certificate whose CN is the RabbitMQ user `landfall-client` (EXTERNAL auth). PEM;
# the keys are PKCS#8 (openssl genpkey), as Landfall's `tls.key_file` expects. Made once.
write_tls() {
  local d=$LAB/rabbitmq/tls
  [ -s "$d/client.pem" ] && return 0
  mkdir -p "$d"
  (
    cd "$d"
    openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca.key
    openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=landfall-lab-ca" -out ca.pem
    for who in server client; do
      openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$who.key"
    done
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem 2>/dev/null
    openssl req -new -key client.key -subj "/CN=landfall-client" -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out client.pem 2>/dev/null
    rm -f ./*.csr ./*.ext
  )
}

# The RabbitMQ user of the lab's client certificate (EXTERNAL auth logs in by its CN).
ensure_rabbit_cert_user() {
  ( rabbit_env
    if ! "$RABBIT_SBIN/rabbitmqctl" -q list_users 2>/dev/null | grep -q '^landfall-client'; then
      "$RABBIT_SBIN/rabbitmqctl" -q add_user landfall-client "$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')" >/dev/null
      "$RABBIT_SBIN/rabbitmqctl" -q set_permissions -p / landfall-client '.*' '.*' '.*' >/dev/null
    fi )
}

# Wrappers in .lab/bin, for people (`eval "$(./bootstrap.sh env)"`) and for tests.
write_tools() {
  local jh; jh=$(java_home)
  cat >"$LAB/bin/hdfs" <<EOF
#!/usr/bin/env bash
# hdfs dfs …  |  hdfs dfsadmin …   (Hadoop's FsShell / DFSAdmin against the lab NameNode)
cmd=\${1:-}; shift || true
case "\$cmd" in
  dfs) main=org.apache.hadoop.fs.FsShell ;;
  dfsadmin) main=org.apache.hadoop.hdfs.tools.DFSAdmin ;;
  *) echo "usage: hdfs dfs|dfsadmin ARGS…" >&2; exit 2 ;;
esac
exec "$jh/bin/java" -Xmx256m -XX:TieredStopAtLevel=1 -Dhadoop.log.dir="$LOGS" \\
  -Dlog4j.configuration=file:$LAB/hadoop/conf/log4j.properties -Dhadoop.root.logger=WARN,console \\
  -cp "$LAB/hadoop/conf:$LAB/hadoop/lib/*" "\$main" "\$@"
EOF
  local tool
  for tool in pyspark spark-submit; do
    cat >"$LAB/bin/$tool" <<EOF
#!/usr/bin/env bash
# Spark $PYSPARK_VERSION (pip) in local mode with hdfs://127.0.0.1:9000 as default filesystem.
export JAVA_HOME="$jh" SPARK_CONF_DIR="$LAB/spark/conf" SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$LAB/venv/bin/python" PYSPARK_DRIVER_PYTHON="$LAB/venv/bin/python"
exec "$LAB/venv/bin/$tool" "\$@"
EOF
  done
  cat >"$LAB/bin/lab-python" <<EOF
#!/usr/bin/env bash
# The lab's Python (pyspark, confluent-kafka) with Spark's environment set.
export JAVA_HOME="$jh" SPARK_CONF_DIR="$LAB/spark/conf" SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$LAB/venv/bin/python" PYSPARK_DRIVER_PYTHON="$LAB/venv/bin/python"
exec "$LAB/venv/bin/python" "\$@"
EOF
  chmod +x "$LAB/bin/"*
}

install_all() {
  mkdir -p "$LOGS" "$RUN"
  install_apt
  install_jars kafka "$VAGRANT_DIR/kafka/pom.xml" kafka.version "$KAFKA_VERSION"
  install_jars hadoop "$VAGRANT_DIR/hadoop/pom.xml" hadoop.version "$HADOOP_VERSION"
  install_jars hive "$VAGRANT_DIR/hive/pom.xml" hive.version "$HIVE_VERSION"
  install_hive_scripts
  # Spark's Hive 4 metastore client (spark-defaults.conf: spark.sql.hive.metastore.jars).
  install_jars spark-hive "$VAGRANT_DIR/spark-hive/pom.xml" hive.version "$HIVE_VERSION"
  install_venv
  write_configs
  # The DataNode and Spark resolve this host's name; make sure it resolves.
  if ! getent hosts "$(hostname)" >/dev/null 2>&1 && [ -w /etc/hosts ]; then
    echo "127.0.1.1 $(hostname)" >>/etc/hosts
  fi
}

# ---- service definitions (one command line per service, used by both modes) -----------------
service_cmd() {
  local jh; jh=$(java_home)
  # A string for eval: the classpath wildcard must reach java unexpanded.
  local hadoop="-Dhadoop.log.dir=$LOGS -Dhadoop.home.dir=$LAB/hadoop \
-Dlog4j.configuration=file:$LAB/hadoop/conf/log4j.properties -Dhadoop.root.logger=INFO,console \
-cp '$LAB/hadoop/conf:$LAB/hadoop/lib/*'"
  case $1 in
    kafka) echo "$jh/bin/java -Xms256m -Xmx512m -XX:+UseG1GC \
-Dlog4j2.configurationFile=$LAB/kafka/log4j2.properties -Dkafka.logs.dir=$LOGS \
-cp '$LAB/kafka/lib/*' kafka.Kafka $LAB/kafka/server.properties" ;;
    namenode) echo "$jh/bin/java -Xmx512m $hadoop" ;;
    datanode) echo "$jh/bin/java -Xmx256m $hadoop" ;;
    # Derby writes derby.log into the working directory unless told otherwise.
    hive-metastore) echo "$jh/bin/java -Xms64m -Xmx384m -XX:+UseSerialGC \
-Dlog4j2.configurationFile=$LAB/hive/conf/metastore-log4j2.properties \
-Dderby.system.home=$LAB/hive -Dderby.stream.error.file=$LOGS/hive-derby.log \
-Dhadoop.home.dir=$LAB/hive -cp '$LAB/hive/conf:$LAB/hive/lib/*'" ;;
    *) die "unknown service $1 (one of: ${SERVICES[*]})" ;;
  esac
}

java_main() {
  case $1 in
    namenode) echo org.apache.hadoop.hdfs.server.namenode.NameNode ;;
    datanode) echo org.apache.hadoop.hdfs.server.datanode.DataNode ;;
    hive-metastore) echo org.apache.hadoop.hive.metastore.HiveMetaStore ;;
    *) echo "" ;;
  esac
}

# `bootstrap.sh run SERVICE` execs the service in the foreground: systemd units call it.
run_foreground() {
  local svc=$1
  case $svc in
    rabbitmq)
      rabbit_env
      exec "$RABBIT_SBIN/rabbitmq-server" ;;
    kafka|namenode|datanode|hive-metastore)
      prepare "$svc"
      eval "exec $(service_cmd "$svc") $(java_main "$svc")" ;;
    *) die "unknown service $svc" ;;
  esac
}

rabbit_env() {
  [ "$SYSTEMD" = 1 ] && return
  export HOME=$LAB/rabbitmq   # the Erlang cookie lives here, shared by server and ctl
  export RABBITMQ_CONFIG_FILE=$LAB/rabbitmq/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$LAB/rabbitmq/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$LAB/rabbitmq/mnesia
  export RABBITMQ_LOG_BASE=$LOGS/rabbitmq
  export RABBITMQ_PID_FILE=$RUN/rabbitmq.pid
  mkdir -p "$RABBITMQ_LOG_BASE"
}

# One-time preparation before a service's first start.
prepare() {
  case $1 in
    kafka)
      if [ ! -f "$LAB/kafka/data/meta.properties" ]; then
        say "kafka: formatting KRaft storage"
        "$(java_home)/bin/java" -Xmx256m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.properties" \
          -cp "$LAB/kafka/lib/*" kafka.tools.StorageTool format --standalone \
          -t "$KAFKA_CLUSTER_ID" -c "$LAB/kafka/server.properties" >"$LOGS/kafka-format.log" 2>&1 \
          || die "kafka storage format failed; see $LOGS/kafka-format.log"
      fi ;;
    namenode)
      if [ ! -f "$LAB/hadoop/name/current/VERSION" ]; then
        say "namenode: formatting HDFS"
        eval "$(service_cmd namenode) org.apache.hadoop.hdfs.server.namenode.NameNode -format -nonInteractive -force" \
          >"$LOGS/namenode-format.log" 2>&1 || die "namenode format failed; see $LOGS/namenode-format.log"
      fi ;;
    hive-metastore)
      # The schema is made once, by the metastore's own schematool from the release's Derby
      # scripts; the database is renamed into place only when that succeeded, so an
      # interrupted init leaves nothing that looks initialised.
      if [ ! -d "$LAB/hive/metastore_db" ]; then
        say "hive-metastore: creating the Derby schema"
        local db=$LAB/hive/metastore_db
        rm -rf "$db.init"
        eval "METASTORE_HOME=$LAB/hive/dist $(service_cmd hive-metastore) \
org.apache.hadoop.hive.metastore.tools.schematool.MetastoreSchemaTool -initSchema -dbType derby \
-url 'jdbc:derby:;databaseName=$db.init;create=true'" \
          >"$LOGS/hive-schematool.log" 2>&1 || die "hive metastore schema init failed; see $LOGS/hive-schematool.log"
        mv "$db.init" "$db"
      fi ;;
  esac
}

# ---- process control (plain host: background processes with pid files) ----------------------
# A process that exists and has not exited: a killed service whose parent has not reaped it
# yet is a zombie, which `kill -0` still reports as alive.
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

pid_of() {
  local svc=$1 pid
  # RabbitMQ writes its own pid file (RABBITMQ_PID_FILE); the others get one from start_service.
  pid=$(cat "$RUN/$svc.pid" 2>/dev/null || true)
  alive "$pid" || pid=
  echo "$pid"
}

start_service() {
  local svc=$1
  if [ "$SYSTEMD" = 1 ]; then
    systemctl start "$(unit_of "$svc")"
    return
  fi
  [ -n "$(pid_of "$svc")" ] && return
  case $svc in
    rabbitmq)
      ( rabbit_env; setsid nohup "$RABBIT_SBIN/rabbitmq-server" >"$LOGS/rabbitmq.log" 2>&1 9>&- & ) ;;
    *)
      prepare "$svc"
      local cmd; cmd="$(service_cmd "$svc") $(java_main "$svc")"
      # Started from a subshell that exits at once, so the service is re-parented to init,
      # which reaps it when it dies (the caller of this script may never wait for it).
      # `9>&-`: a service must not inherit the descriptor of `up`'s lock, or it would hold
      # the lock for as long as it runs and every later `./bootstrap.sh up` would wait.
      ( setsid nohup bash -c "exec $cmd" >"$LOGS/$svc.log" 2>&1 9>&- &
        echo $! >"$RUN/$svc.pid" ) ;;
  esac
}

stop_service() {
  local svc=$1 pid i
  if [ "$SYSTEMD" = 1 ]; then systemctl stop "$(unit_of "$svc")"; return; fi
  pid=$(pid_of "$svc")
  [ -n "$pid" ] || return 0
  if [ "$svc" = rabbitmq ]; then
    ( rabbit_env; "$RABBIT_SBIN/rabbitmqctl" -q stop >/dev/null 2>&1 ) || kill "$pid" 2>/dev/null || true
  else
    kill "$pid" 2>/dev/null || true   # SIGTERM: Kafka does a controlled shutdown
  fi
  for i in $(seq 1 60); do
    alive "$pid" || break
    sleep 0.5
    [ "$i" -eq 60 ] && kill -9 "$pid" 2>/dev/null
  done
  rm -f "$RUN/$svc.pid"
}

kill_service() {
  local svc=$1 pid
  if [ "$SYSTEMD" = 1 ]; then systemctl kill -s KILL "$(unit_of "$svc")"; return; fi
  pid=$(pid_of "$svc")
  [ -n "$pid" ] || { say "$svc is not running"; return 0; }
  kill -9 "$pid"
  while alive "$pid"; do sleep 0.1; done
  say "$svc killed (pid $pid)"
}

unit_of() {
  case $1 in
    kafka) echo kafka.service ;;
    rabbitmq) echo rabbitmq-server.service ;;
    namenode) echo hdfs-namenode.service ;;
    datanode) echo hdfs-datanode.service ;;
    hive-metastore) echo hive-metastore.service ;;
  esac
}

# One real Thrift call (binary protocol, unframed, as the metastore serves by default):
# get_metastore_db_uuid(), which reads Derby. Healthy when the reply is a REPLY (80010002) whose
# result opens with field 0 of type string (0b), not a MetaException (12): 4 + 4 + 21 (the name)
# + 4 (seqid) bytes, then that type byte at hex offset 66. The reply is always 77 bytes (a
# 36-character UUID); reading all of it lets the socket close cleanly: a close with unread
# bytes is a reset, which the metastore logs as an ERROR with a stack trace.
hms_call_ok() {
  local reply
  reply=$( (exec 3<>/dev/tcp/127.0.0.1/9083 || exit 1
            printf '\x80\x01\x00\x01\x00\x00\x00\x15get_metastore_db_uuid\x00\x00\x00\x01\x00' >&3
            timeout 5 head -c 77 <&3) 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
  [ "${reply:0:8}" = 80010002 ] && [ "${reply:66:2}" = 0b ]
}

# ---- health ----------------------------------------------------------------------------------
jmx() { curl -sf --max-time 3 "http://127.0.0.1:9870/jmx?qry=$1" 2>/dev/null; }

healthy() {
  case $1 in
    kafka) kcat -L -b 127.0.0.1:9092 -m 3 >/dev/null 2>&1 ;;
    rabbitmq) ( rabbit_env; "$RABBIT_SBIN/rabbitmq-diagnostics" -q ping >/dev/null 2>&1 ) ;;
    namenode)
      # Up and out of safe mode (the NameNodeInfo bean reports an empty Safemode string then).
      jmx 'Hadoop:service=NameNode,name=NameNodeInfo' | grep -q '"Safemode" : ""' ;;
    datanode)
      # The DataNode itself says it is registered with the active NameNode, and the NameNode
      # counts at least one live DataNode (either alone can be stale right after a kill).
      local live
      curl -sf --max-time 3 'http://127.0.0.1:9864/jmx?qry=Hadoop:service=DataNode,name=DataNodeInfo' 2>/dev/null \
        | grep -q 'ActorState\\":\\"RUNNING\\".*NamenodeHaState\\":\\"active' || return 1
      live=$(jmx 'Hadoop:service=NameNode,name=FSNamesystemState' | sed -n 's/.*"NumLiveDataNodes" : \([0-9]*\).*/\1/p')
      [ "${live:-0}" -ge 1 ] ;;
    hive-metastore) hms_call_ok ;;
  esac
}

wait_healthy() { # service timeout-seconds
  local svc=$1 limit=$2 start=$SECONDS
  until healthy "$svc"; do
    if [ "$SYSTEMD" != 1 ] && [ -z "$(pid_of "$svc")" ] && [ $((SECONDS - start)) -gt 5 ]; then
      tail -n 20 "$LOGS/$svc.log" >&2 2>/dev/null || true
      die "$svc exited during start; see $LOGS/$svc.log"
    fi
    [ $((SECONDS - start)) -lt "$limit" ] || die "$svc not healthy after ${limit}s; see $LOGS/$svc.log"
    sleep 1
  done
  if [ "$svc" = rabbitmq ]; then ( rabbit_env; "$RABBIT_SBIN/rabbitmqctl" -q await_startup >/dev/null ); fi
  say "$svc healthy ($((SECONDS - start))s)"
}

# RabbitMQ 3.10 (Debian 12) can restart after `kill -9` with a quorum queue declared shortly
# before it left as a follower without a leader: its single member never starts an election,
# every consume and publish on it times out, and the broker closes the connection with
# INTERNAL_ERROR (3 times in 20 kills of the fault matrix's release run; `rabbitmq-queues
# quorum_status Q` shows "follower", term 0, while `list_queues leader` names the node). So after
# a start, every quorum queue is asked to hold an election: a leader ignores it (its term stays),
# a stuck follower becomes leader with its log intact.
rabbit_quorum_leaders() {
  sleep 3   # the elections of a normal recovery
  # shellcheck disable=SC2016  # Erlang, not shell
  ( rabbit_env; timeout 30 "$RABBIT_SBIN/rabbitmqctl" eval \
    '[ra:trigger_election(amqqueue:get_pid(Q)) || Q <- rabbit_amqqueue:list(), amqqueue:get_type(Q) =:= rabbit_quorum_queue], ok.' \
    >/dev/null 2>&1 ) || say "rabbitmq: could not ask the quorum queues for elections (see $LOGS/rabbitmq.log)"
}

rss_mb() { # pid -> resident MB
  awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0
}

status() {
  local svc pid ok=0 total=0 mb state
  printf '%-14s %-9s %8s %s\n' SERVICE STATE RSS_MB PID
  for svc in "${SERVICES[@]}"; do
    if [ "$SYSTEMD" = 1 ]; then
      pid=$(systemctl show -p MainPID --value "$(unit_of "$svc")" 2>/dev/null || true)
      [ "$pid" = 0 ] && pid=
    else
      pid=$(pid_of "$svc")
    fi
    mb=0
    if [ -n "$pid" ]; then
      mb=$(rss_mb "$pid")
      if healthy "$svc"; then state=healthy; else state=unhealthy; ok=1; fi
    else
      state=down; ok=1
    fi
    total=$((total + mb))
    printf '%-14s %-9s %8s %s\n' "$svc" "$state" "$mb" "${pid:--}"
  done
  printf '%-14s %-9s %8s\n' total "" "$total"
  return $ok
}

start_all() {
  local svc
  # One after another: CPU is the scarce resource on 2 cores.
  # The metastore comes last: its warehouse is on HDFS.
  for svc in namenode datanode kafka rabbitmq hive-metastore; do
    start_service "$svc"
    case $svc in
      namenode) wait_until_listening 9870 120 namenode ;;
      datanode) wait_healthy namenode 180; wait_healthy datanode 120 ;;
      kafka) wait_healthy kafka 120 ;;
      rabbitmq) wait_healthy rabbitmq 120; ensure_rabbit_cert_user ;;
      hive-metastore) wait_healthy hive-metastore 180 ;;
    esac
  done
}

wait_until_listening() { # port timeout name
  local start=$SECONDS
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $((SECONDS - start)) -lt "$2" ] || die "$3 did not open port $1 within $2s; see $LOGS/$3.log"
    if [ "$SYSTEMD" != 1 ] && [ -z "$(pid_of "$3")" ]; then
      tail -n 20 "$LOGS/$3.log" >&2
      die "$3 exited; see $LOGS/$3.log"
    fi
    sleep 1
  done
}

summary() {
  cat <<EOF

Landfall lab is up (state in $LAB)
  Kafka $KAFKA_VERSION (KRaft)   127.0.0.1:9092
  RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | cut -d- -f1)         amqp://guest:guest@127.0.0.1:5672   UI http://127.0.0.1:15672 (guest/guest)
  HDFS $HADOOP_VERSION           hdfs://127.0.0.1:9000                UI http://127.0.0.1:9870
  Hive Metastore $HIVE_VERSION  thrift://127.0.0.1:9083              warehouse $HIVE_WAREHOUSE
  Spark $PYSPARK_VERSION (pyspark)  ./bootstrap.sh pyspark   (default FS is the lab HDFS, catalog the metastore)
Tools: eval "\$(./bootstrap.sh env)"  then  hdfs dfs -ls /, pyspark, spark-submit
       ./bootstrap.sh topic NAME 4 ; ./bootstrap.sh produce NAME 1000 ; ./bootstrap.sh status
EOF
}

up() {
  local t0=$SECONDS
  # Two `up`s at once (a test run and a benchmark) would start every service twice; the second
  # waits for the first, then finds everything healthy.
  mkdir -p "$LAB"
  exec 9>"$LAB/.up.lock"
  flock -w 900 9 || die "another ./bootstrap.sh up has held $LAB/.up.lock for 15 minutes"
  install_all
  if [ "$SYSTEMD" = 1 ]; then install_units; fi
  start_all
  status || die "some services are not healthy"
  # Release the lock now: `test` execs cargo after `up`, which would hold it for the run.
  exec 9>&-
  if [ "$SYSTEMD" = 1 ]; then install_daemon; fi
  summary
  say "lab ready in $((SECONDS - t0))s"
}

install_units() {
  local unit
  for unit in "$VAGRANT_DIR"/systemd/*.service; do
    sed -e "s|@ROOT@|$ROOT|g" -e "s|@LAB@|$LAB|g" "$unit" >"/etc/systemd/system/$(basename "$unit")"
  done
  # RabbitMQ runs under Debian's own unit, pointed at the lab config.
  mkdir -p /etc/systemd/system/rabbitmq-server.service.d
  cat >/etc/systemd/system/rabbitmq-server.service.d/lab.conf <<EOF
[Service]
Environment=RABBITMQ_CONFIG_FILE=$LAB/rabbitmq/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$LAB/rabbitmq/enabled_plugins
EOF
  chmod -R a+rX "$LAB/rabbitmq"
  systemctl daemon-reload
  systemctl enable kafka.service hdfs-namenode.service hdfs-datanode.service rabbitmq-server.service \
    hive-metastore.service
}

# `cargo build --release`, saying what it does: a first build compiles ~300 crates (librdkafka
# from C sources among them) and takes about 10 minutes on 2 cores, so a line every 20 s shows
# the crate being compiled rather than a silent terminal.
build_release() {
  say "landfall: building (release; a first build takes about 10 minutes on 2 cores, later ones seconds; log: $LOGS/cargo.log)"
  local pid
  (cd "$ROOT" && PATH=$HOME/.cargo/bin:$PATH exec cargo build --release --locked) >"$LOGS/cargo.log" 2>&1 9>&- &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    kill -0 "$pid" 2>/dev/null || break
    say "landfall: still building: $(grep -E '^ *(Compiling|Building)' "$LOGS/cargo.log" | tail -n 1 | sed 's/^ *//')"
  done
  wait "$pid" || die "cargo build failed; see $LOGS/cargo.log"
  say "landfall: built target/release/landfall"
}

# The main job on a fresh machine: everything from an empty lab to a Spark query over landed data.
demo() {
  local count=$1
  up
  build_release
  "$LAB/bin/lab-python" "$VAGRANT_DIR/tools/kafka_tool.py" create-topic clicks 4
  "$LAB/bin/lab-python" "$VAGRANT_DIR/tools/kafka_tool.py" produce clicks "$count"
  say "landfall: landing the clicks topic in hdfs://127.0.0.1:9000/landing/clicks"
  (cd "$ROOT" && LANDFALL_LOG_LEVEL=warn target/release/landfall run --until-caught-up pipelines/clicks.yaml)
  "$LAB/bin/lab-python" "$VAGRANT_DIR/tools/query_clicks.py" /landing/clicks
}

# The VM also runs Landfall itself as a unit, on the example pipelines.
install_daemon() {
  if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    say "rust: installing the stable toolchain with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >"$LOGS/rustup.log" 2>&1 \
      || die "rustup failed; see $LOGS/rustup.log"
  fi
  build_release
  install_daemon_user
  systemctl enable --now landfall.service
  say "landfall.service running: journalctl -u landfall -f"
}

# landfall.service runs as the system user `landfall`, not root. systemd creates its state dir
# (StateDirectory=); the user needs read access to the binary, settings and pipelines, and, HDFS
# checking permissions against the OS user name, ownership of /landing (root is the HDFS superuser,
# so the tests and the demo, run as root, still write there).
install_daemon_user() {
  id -u landfall >/dev/null 2>&1 \
    || useradd --system --user-group --home-dir /var/lib/landfall --no-create-home --shell /usr/sbin/nologin landfall
  chmod o+rX "$ROOT" "$ROOT/target" "$ROOT/target/release" "$ROOT/target/release/landfall"
  chmod -R o+rX "$ROOT/config" "$ROOT/pipelines"
  runuser -u landfall -- "$ROOT/target/release/landfall" validate --config "$ROOT/config/landfall.yaml" "$ROOT/pipelines" \
    || die "user landfall cannot read the binary, config/ or pipelines/ under $ROOT (or they do not validate)"
  "$LAB/bin/hdfs" dfs -mkdir -p /landing
  "$LAB/bin/hdfs" dfs -chown -R landfall:landfall /landing
}

# The seeded fault matrix: SEEDS runs of each fault class (default 1, as in CI), optionally
# only the comma-separated CLASSES. A release run (>= 20 seeds of every class) writes its table
# into docs/reliability.md. LF_FAULT_SEED and LF_FAULT_EVENTS pass through.
faults() {
  local seeds=${1:-1} classes=${2:-} report=""
  [[ $seeds =~ ^[0-9]+$ ]] || die "usage: $0 faults [SEEDS] [CLASS,…] (SEEDS: a number)"
  if [ "$seeds" -ge 20 ] && [ -z "$classes" ]; then report="$ROOT/docs/reliability.md"; fi
  up
  cd "$ROOT"
  LF_FAULT_SEEDS=$seeds LF_FAULT_CLASSES=$classes LF_FAULT_REPORT=$report \
    exec cargo test --locked --release --test fault_matrix -- --nocapture
}

main() {
  local cmd=${1:-up}
  [ $# -gt 0 ] && shift
  case $cmd in
    up) up ;;
    status) status ;;
    stop)
      if [ $# -eq 0 ]; then
        local svc
        for svc in hive-metastore rabbitmq kafka datanode namenode; do stop_service "$svc"; done
        say "all services stopped"
      else
        # `stop SERVICE` stops that one only (it used to stop every service, whatever was named).
        [ $# -eq 1 ] || die "usage: $0 stop [SERVICE] (one of: ${SERVICES[*]})"
        case " ${SERVICES[*]} " in *" $1 "*) ;; *) die "unknown service $1 (one of: ${SERVICES[*]})" ;; esac
        stop_service "$1"
        say "$1 stopped"
      fi ;;
    start|restart|kill)
      [ $# -eq 1 ] || die "usage: $0 $cmd SERVICE (one of: ${SERVICES[*]})"
      local svc=$1
      case " ${SERVICES[*]} " in *" $svc "*) ;; *) die "unknown service $svc (one of: ${SERVICES[*]})" ;; esac
      case $cmd in
        kill) kill_service "$svc" ;;
        *)
          [ "$cmd" = restart ] && stop_service "$svc"
          start_service "$svc"
          if [ "$svc" = namenode ]; then wait_until_listening 9870 120 namenode; wait_healthy namenode 180
          else wait_healthy "$svc" 180; fi
          if [ "$svc" = rabbitmq ]; then rabbit_quorum_leaders; fi ;;
      esac ;;
    run) run_foreground "$@" ;;
    env) printf 'export PATH=%q:\x24PATH\nexport LANDFALL_LAB=%q\n' "$LAB/bin" "$LAB" ;;
    hdfs) exec "$LAB/bin/hdfs" "$@" ;;
    pyspark|spark-submit) exec "$LAB/bin/$cmd" "$@" ;;
    topic) exec "$LAB/bin/lab-python" "$VAGRANT_DIR/tools/kafka_tool.py" create-topic "$@" ;;
    produce) exec "$LAB/bin/lab-python" "$VAGRANT_DIR/tools/kafka_tool.py" produce "$@" ;;
    query) exec "$LAB/bin/lab-python" "$VAGRANT_DIR/tools/query_clicks.py" "$@" ;;
    demo) demo "${1:-100000}" ;;
    flink) install_flink ;;
    test) up; cd "$ROOT" && exec /usr/bin/python3 tests/run_suite.py "$@" ;;
    faults) faults "$@" ;;
    -h|--help|help) sed -n '2,25p' "$0" ;;
    *) die "unknown command $cmd; see $0 --help" ;;
  esac
}

main "$@"
