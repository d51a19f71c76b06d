//! Deals by id whatever their status: what names the deal of a past investment (ListDeals
//! offers open deals only).

use entity::prelude::*;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use service_kit::status::{Invalid, Violations};

use crate::Result;

/// The most ids one GetDeals call may name.
pub(crate) const MAX_IDS: usize = 100;

/// The deals with these ids; unknown ones are left out. Every id is checked first.
pub(crate) async fn by_ids(db: &DatabaseConnection, ids: &[String]) -> Result<Vec<deal::Model>> {
    if ids.len() > MAX_IDS {
        return Err(Invalid::field("deal_ids", format!("at most {MAX_IDS} ids")).into());
    }
    let mut v = Violations::default();
    let parsed: Vec<uuid::Uuid> = ids.iter().map(|id| v.uuid("deal_ids", id)).collect();
    v.finish()?;
    if parsed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Deal::find()
        .filter(deal::Column::Id.is_in(parsed))
        .all(db)
        .await?)
}
