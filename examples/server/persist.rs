//! SAVE / BGSAVE. The crate's RDB writer has not landed yet, so both reply with an error that
//! says so; once it exists they write `dir/dbfilename` through it.

use std::borrow::Cow;

use bytes::Bytes;

use crate::commands::Ctx;

pub fn save(_ctx: &mut Ctx, a: &[Bytes]) -> Result<(), Cow<'static, str>> {
    let name = String::from_utf8_lossy(&a[0]).to_ascii_uppercase();
    Err(format!("ERR {name} is not available: this server has no RDB writer yet").into())
}
