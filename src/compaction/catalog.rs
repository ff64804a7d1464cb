//! [`Catalog`] on the Hive Metastore: the two calls compaction makes, read before write, with
//! every field of the partition it does not change sent back as read.

use async_trait::async_trait;

use super::round::{Catalog, CatalogPartition};
use crate::completion::task::HIVE_COMPLETE;
use crate::metastore::MetastoreClient;

/// One table of one metastore.
pub struct HiveCatalog {
    pub client: MetastoreClient,
    pub database: String,
    pub table: String,
}

#[async_trait]
impl Catalog for HiveCatalog {
    async fn partition(&self, values: &[String]) -> Result<Option<CatalogPartition>, String> {
        let part = self.client.get_partition(&self.database, &self.table, values).await.map_err(|e| e.to_string())?;
        Ok(part.map(|p| CatalogPartition { complete: p.parameters.contains_key(HIVE_COMPLETE), location: p.location }))
    }

    async fn switch(&self, values: &[String], location: &str, parameters: &[(String, String)]) -> Result<(), String> {
        let Some(mut part) =
            self.client.get_partition(&self.database, &self.table, values).await.map_err(|e| e.to_string())?
        else {
            return Err(format!(
                "the metastore has no partition {} of {}.{} any more (dropped by hand?); its files stay where they are",
                values.join("/"),
                self.database,
                self.table
            ));
        };
        part.location = location.to_string();
        part.parameters.extend(parameters.iter().cloned());
        self.client.alter_partition(&self.database, &self.table, &part).await.map_err(|e| e.to_string())
    }
}
