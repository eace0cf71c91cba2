//! What cbcopyout leaves out of a schema-wide export, and says so (issue 15): a materialized
//! view that was never populated has no rows to read, so `-n public` skips it with a note
//! instead of failing on it.

use testkit::TestServer;

#[test]
fn an_unpopulated_materialized_view_is_skipped_with_a_note() {
    let server = TestServer::start();
    server.create_db("shop");
    server.psql(
        "shop",
        "CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 100) g;
         CREATE MATERIALIZED VIEW public.filled AS SELECT id FROM public.t WHERE id <= 10;
         CREATE MATERIALIZED VIEW public.never AS SELECT id FROM public.t WITH NO DATA;",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbcopyout"))
        .args(["-d", "shop", "-n", "public", "-o"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipping materialized view public.never: it was never populated"),
        "{stderr}"
    );
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["public.filled.txt", "public.t.txt"], "{stderr}");
    let filled = std::fs::read_to_string(dir.path().join("public.filled.txt")).unwrap();
    assert_eq!(filled.lines().count(), 10);
}
