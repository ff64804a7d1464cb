//! Apache Thrift's binary protocol (strict, unframed: what the Hive Metastore serves by default),
//! reduced to what the metastore calls need: a value tree, its encoding, and a decoder that says
//! "incomplete" instead of blocking, so the caller reads from the socket until a reply parses.
//!
//! The tree is untyped on purpose. `hms.rs` maps the few structs Landfall uses onto it by field
//! id and keeps every field it does not know (a Hive 4 `Partition` has more than the Hive 3
//! IDL), so an object read from the metastore can be written back unchanged but for the fields
//! we set. Spec: <https://github.com/apache/thrift/blob/master/doc/specs/thrift-binary-protocol.md>.

use std::fmt;

/// Thrift type ids (the byte before each field and in container headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ttype {
    Bool = 2,
    Byte = 3,
    Double = 4,
    I16 = 6,
    I32 = 8,
    I64 = 10,
    String = 11,
    Struct = 12,
    Map = 13,
    Set = 14,
    List = 15,
}

impl Ttype {
    fn from_byte(b: u8) -> Result<Ttype, DecodeError> {
        Ok(match b {
            2 => Ttype::Bool,
            3 => Ttype::Byte,
            4 => Ttype::Double,
            6 => Ttype::I16,
            8 => Ttype::I32,
            10 => Ttype::I64,
            11 => Ttype::String,
            12 => Ttype::Struct,
            13 => Ttype::Map,
            14 => Ttype::Set,
            15 => Ttype::List,
            other => return Err(DecodeError::Invalid(format!("unknown thrift type id {other}"))),
        })
    }
}

/// One Thrift value. Strings are kept as bytes (Thrift `binary` and `string` share the wire
/// type); [`Value::as_str`] decodes UTF-8 where a string is expected.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Byte(i8),
    Double(f64),
    I16(i16),
    I32(i32),
    I64(i64),
    Bytes(Vec<u8>),
    Struct(Struct),
    Map {
        key: Ttype,
        value: Ttype,
        entries: Vec<(Value, Value)>,
    },
    /// Lists and sets (same encoding; `set` says which).
    List {
        elem: Ttype,
        items: Vec<Value>,
        set: bool,
    },
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::Bytes(s.into().into_bytes())
    }

    pub fn string_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::List {
            elem: Ttype::String,
            items: items.into_iter().map(|s| Value::string(s.as_ref())).collect(),
            set: false,
        }
    }

    pub fn struct_list(items: Vec<Struct>) -> Value {
        Value::List { elem: Ttype::Struct, items: items.into_iter().map(Value::Struct).collect(), set: false }
    }

    pub fn string_map<'a>(entries: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
        Value::Map {
            key: Ttype::String,
            value: Ttype::String,
            entries: entries.into_iter().map(|(k, v)| (Value::string(k.as_str()), Value::string(v.as_str()))).collect(),
        }
    }

    pub fn ttype(&self) -> Ttype {
        match self {
            Value::Bool(_) => Ttype::Bool,
            Value::Byte(_) => Ttype::Byte,
            Value::Double(_) => Ttype::Double,
            Value::I16(_) => Ttype::I16,
            Value::I32(_) => Ttype::I32,
            Value::I64(_) => Ttype::I64,
            Value::Bytes(_) => Ttype::String,
            Value::Struct(_) => Ttype::Struct,
            Value::Map { .. } => Ttype::Map,
            Value::List { set: false, .. } => Ttype::List,
            Value::List { set: true, .. } => Ttype::Set,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::I32(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List { items, .. } => Some(items),
            _ => None,
        }
    }

    /// A `map<string,string>` as pairs (other entries are skipped).
    pub fn as_string_map(&self) -> Vec<(String, String)> {
        match self {
            Value::Map { entries, .. } => {
                entries.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A struct's fields by id, in the order they were set or read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Struct {
    pub fields: Vec<(i16, Value)>,
}

impl Struct {
    pub fn new() -> Struct {
        Struct::default()
    }

    /// Sets field `id` (replacing it if present): builder style.
    pub fn with(mut self, id: i16, value: Value) -> Struct {
        self.set(id, value);
        self
    }

    pub fn set(&mut self, id: i16, value: Value) {
        match self.fields.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((id, value)),
        }
    }

    pub fn get(&self, id: i16) -> Option<&Value> {
        self.fields.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    pub fn str(&self, id: i16) -> Option<&str> {
        self.get(id).and_then(Value::as_str)
    }

    pub fn string(&self, id: i16) -> String {
        self.str(id).unwrap_or_default().to_string()
    }
}

// ---- encoding ----------------------------------------------------------------------------------

const VERSION_1: u32 = 0x8001_0000;

/// Message types in the header.
pub const CALL: u8 = 1;
pub const REPLY: u8 = 2;
pub const EXCEPTION: u8 = 3;

/// A complete CALL message: header, then the arguments struct.
pub fn encode_call(method: &str, seq: i32, args: &Struct) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&(VERSION_1 | CALL as u32).to_be_bytes());
    write_bytes(&mut out, method.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    write_struct(&mut out, args);
    out
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

fn write_struct(out: &mut Vec<u8>, s: &Struct) {
    for (id, v) in &s.fields {
        out.push(v.ttype() as u8);
        out.extend_from_slice(&id.to_be_bytes());
        write_value(out, v);
    }
    out.push(0); // STOP
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => out.push(*b as u8),
        Value::Byte(b) => out.push(*b as u8),
        Value::Double(d) => out.extend_from_slice(&d.to_be_bytes()),
        Value::I16(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::I32(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::I64(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::Bytes(b) => write_bytes(out, b),
        Value::Struct(s) => write_struct(out, s),
        Value::Map { key, value, entries } => {
            out.push(*key as u8);
            out.push(*value as u8);
            out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
            for (k, v) in entries {
                write_value(out, k);
                write_value(out, v);
            }
        }
        Value::List { elem, items, .. } => {
            out.push(*elem as u8);
            out.extend_from_slice(&(items.len() as i32).to_be_bytes());
            for item in items {
                write_value(out, item);
            }
        }
    }
}

// ---- decoding ----------------------------------------------------------------------------------

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// More bytes are needed: read from the socket and try again.
    Incomplete,
    /// Not a Thrift binary-protocol message we can read.
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete => f.write_str("incomplete message"),
            DecodeError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Bounds that keep a garbled length from allocating the machine away.
const MAX_BYTES: usize = 64 << 20;
const MAX_ITEMS: usize = 1 << 20;
const MAX_DEPTH: usize = 64;

/// A decoded message: the header and the result (or exception) struct.
#[derive(Debug)]
pub struct Message {
    pub method: String,
    pub kind: u8,
    pub seq: i32,
    pub body: Struct,
}

/// Decodes one whole message from the start of `buf`, returning it and the bytes it used.
pub fn decode_message(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let header = r.i32()? as u32;
    if header & 0xffff_0000 != VERSION_1 {
        return Err(DecodeError::Invalid(format!(
            "reply does not start with the Thrift binary protocol's version 1 header (got {header:#010x})"
        )));
    }
    let kind = (header & 0xff) as u8;
    let method = String::from_utf8_lossy(r.bytes()?).into_owned();
    let seq = r.i32()?;
    let body = r.read_struct(0)?;
    Ok((Message { method, kind, seq, body }, r.pos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::Incomplete);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn len(&mut self, max: usize, what: &str) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        if n < 0 || n as usize > max {
            return Err(DecodeError::Invalid(format!("{what} length {n} is out of range")));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(MAX_BYTES, "string")?;
        self.take(n)
    }

    fn read_struct(&mut self, depth: usize) -> Result<Struct, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::Invalid("structs nested too deeply".into()));
        }
        let mut s = Struct::new();
        loop {
            let t = self.u8()?;
            if t == 0 {
                return Ok(s);
            }
            let t = Ttype::from_byte(t)?;
            let id = self.i16()?;
            let v = self.read_value(t, depth + 1)?;
            s.fields.push((id, v));
        }
    }

    fn read_value(&mut self, t: Ttype, depth: usize) -> Result<Value, DecodeError> {
        Ok(match t {
            Ttype::Bool => Value::Bool(self.u8()? != 0),
            Ttype::Byte => Value::Byte(self.u8()? as i8),
            Ttype::Double => Value::Double(f64::from_bits(self.i64()? as u64)),
            Ttype::I16 => Value::I16(self.i16()?),
            Ttype::I32 => Value::I32(self.i32()?),
            Ttype::I64 => Value::I64(self.i64()?),
            Ttype::String => Value::Bytes(self.bytes()?.to_vec()),
            Ttype::Struct => Value::Struct(self.read_struct(depth)?),
            Ttype::Map => {
                let key = Ttype::from_byte(self.u8()?)?;
                let value = Ttype::from_byte(self.u8()?)?;
                let n = self.len(MAX_ITEMS, "map")?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k = self.read_value(key, depth + 1)?;
                    let v = self.read_value(value, depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map { key, value, entries }
            }
            Ttype::List | Ttype::Set => {
                let elem = Ttype::from_byte(self.u8()?)?;
                let n = self.len(MAX_ITEMS, "list")?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.read_value(elem, depth + 1)?);
                }
                Value::List { elem, items, set: t == Ttype::Set }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &Struct) -> Vec<u8> {
        let mut out = encode_call("get_table_req", 7, body);
        out[3] = REPLY; // same layout, another message type
        out
    }

    #[test]
    fn a_call_has_the_strict_header_the_method_and_the_sequence() {
        let bytes = encode_call("get_all_databases", 1, &Struct::new());
        // The exact bytes bootstrap.sh's health check sends for its own call, in this shape.
        let mut want = vec![0x80, 0x01, 0x00, 0x01, 0, 0, 0, 17];
        want.extend_from_slice(b"get_all_databases");
        want.extend_from_slice(&[0, 0, 0, 1, 0]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn every_type_round_trips_and_unknown_fields_are_kept() {
        let mut params = std::collections::BTreeMap::new();
        params.insert("EXTERNAL".to_string(), "TRUE".to_string());
        let inner = Struct::new().with(1, Value::string("dt")).with(2, Value::string("string"));
        let s = Struct::new()
            .with(1, Value::Bool(true))
            .with(2, Value::Byte(-3))
            .with(3, Value::Double(1.5))
            .with(4, Value::I16(-2))
            .with(5, Value::I32(1 << 20))
            .with(6, Value::I64(-(1 << 40)))
            .with(7, Value::string("héllo"))
            .with(8, Value::struct_list(vec![inner.clone(), inner]))
            .with(9, Value::string_map(&params))
            .with(10, Value::List { elem: Ttype::I32, items: vec![Value::I32(1)], set: true })
            .with(99, Value::Struct(Struct::new().with(1, Value::string_list(["a", "b"]))));
        let bytes = reply(&s);
        let (msg, used) = decode_message(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!((msg.method.as_str(), msg.kind, msg.seq), ("get_table_req", REPLY, 7));
        assert_eq!(msg.body, s);
        assert_eq!(msg.body.str(7), Some("héllo"));
        assert_eq!(msg.body.get(9).unwrap().as_string_map(), vec![("EXTERNAL".into(), "TRUE".into())]);
    }

    #[test]
    fn every_prefix_of_a_message_is_incomplete_not_an_error() {
        let s = Struct::new().with(0, Value::struct_list(vec![Struct::new().with(1, Value::string("x"))]));
        let bytes = reply(&s);
        for cut in 0..bytes.len() {
            assert_eq!(decode_message(&bytes[..cut]).unwrap_err(), DecodeError::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_and_absurd_lengths_are_invalid() {
        // An HTTP answer (someone pointed the URI at a web port).
        let err = decode_message(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
        assert!(matches!(err, DecodeError::Invalid(ref m) if m.contains("version 1 header")), "{err}");
        // A string claiming 2 GiB.
        let mut bytes = vec![0x80, 0x01, 0x00, 0x02];
        bytes.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(decode_message(&bytes).unwrap_err(), DecodeError::Invalid(_)));
        // An unknown field type.
        let mut bytes = encode_call("m", 1, &Struct::new());
        bytes.pop();
        bytes.extend_from_slice(&[9, 0, 1]);
        assert!(matches!(decode_message(&bytes).unwrap_err(), DecodeError::Invalid(_)));
    }
}
