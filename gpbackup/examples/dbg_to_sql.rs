fn main() {
    let args: Vec<String> = std::env::args().collect();
    let set = gpbackup::BackupSet::open_roots(&[&args[1]], args.get(3).map(|s| s.as_str())).unwrap();
    let opts = gpbackup::to_sql::ToSqlOptions { target: gpbackup::to_sql::Target::Postgres, with_globals: true, create_db: true, ..Default::default() };
    let r = gpbackup::to_sql::write_sql(&set, std::path::Path::new(&args[2]), &opts).unwrap();
    for t in r.translation { eprintln!("{t}"); }
}
