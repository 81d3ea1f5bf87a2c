//! `embed_migrations!` reads the migration files when the crate is compiled, but Cargo does not
//! know it depends on them: without this, a new migration directory is left out of an
//! incremental build, and the binary runs against a schema it does not migrate to.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
