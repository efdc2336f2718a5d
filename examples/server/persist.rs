//! SAVE / BGSAVE: the keyspace written to `dir/dbfilename` with the crate's RDB writer (see
//! [`crate::app::snapshot`]), with the replication id and offset in its aux fields so that a restart
//! from it could resume replication.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use bytes::Bytes;
use respsync::rdb::ReplInfo;

use crate::app::commands::Ctx;
use crate::app::snapshot::{self, Spec};
use crate::app::store::DbSnapshot;

enum SaveError {
    Io(std::io::Error),
    Write(respsync::rdb::WriteError),
}

impl From<respsync::rdb::WriteError> for SaveError {
    fn from(e: respsync::rdb::WriteError) -> Self {
        SaveError::Write(e)
    }
}

fn save_to(path: PathBuf, dbs: Vec<DbSnapshot>, spec: &Spec) -> Result<u64, String> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let file = File::create(&tmp).map_err(|e| e.to_string())?;
    let mut f = BufWriter::with_capacity(1 << 20, file);
    let written =
        snapshot::write::<SaveError>(dbs, spec, |c| f.write_all(&c).map_err(SaveError::Io))
            .and_then(|w| f.flush().map(|_| w).map_err(SaveError::Io))
            .map_err(|e| match e {
                SaveError::Io(e) => e.to_string(),
                SaveError::Write(e) => e.to_string(),
            });
    match written {
        Ok(w) => {
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            Ok(w.keys)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

pub fn save(ctx: &mut Ctx, a: &[&[u8]]) -> Result<(), Cow<'static, str>> {
    let srv = &mut *ctx.srv;
    let path = PathBuf::from(&srv.cfg.dir).join(&srv.cfg.dbfilename);
    let dbs = srv.store.snapshot();
    let spec = Spec {
        // RDB 10 (what Redis 7.0 writes) or the configured newer version; 12 when a hash holds
        // field TTLs, which older versions cannot store.
        version: if dbs.iter().any(|d| d.field_ttl_hashes() > 0) {
            12
        } else {
            srv.cfg.repl_rdb_version.max(10)
        },
        repl: Some(ReplInfo {
            // A replica's file resumes its master's stream in the database it was in; a
            // master's restored node starts its stream with SELECT anyway.
            stream_db: if srv.is_replica() {
                u64::from(srv.resume_db)
            } else {
                0
            },
            id: Bytes::copy_from_slice(srv.node.ids().id.as_bytes()),
            offset: srv.node.offset().value(),
        }),
        data: true,
    };
    if a[0].eq_ignore_ascii_case(b"save") {
        save_to(path, dbs, &spec).map_err(|e| format!("ERR {e}"))?;
        srv.dirty = 0;
        srv.last_save = crate::app::store::now_ms() / 1000;
        ctx.out.ok();
    } else {
        std::thread::spawn(move || {
            if let Err(e) = save_to(path, dbs, &spec) {
                crate::log!("Background saving error: {e}");
            }
        });
        srv.dirty = 0;
        srv.last_save = crate::app::store::now_ms() / 1000;
        ctx.out.simple("Background saving started");
    }
    Ok(())
}
