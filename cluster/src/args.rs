//! The connection flags every `cb*` tool shares, named as in pg_dump.

/// `-h -p -U -d -w -W --role`. `-d` takes a database name, a `key=value` conninfo or a URI.
///
/// Because `-h` is the host (as in pg_dump), binaries disable clap's `-h` help flag and offer
/// `--help` only.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// Database server host or socket directory (PGHOST)
    #[arg(short = 'h', long = "host", value_name = "HOSTNAME")]
    pub host: Option<String>,

    /// Database server port (PGPORT)
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<String>,

    /// Connect as this database user (PGUSER)
    #[arg(short = 'U', long = "username", value_name = "NAME")]
    pub username: Option<String>,

    /// Database name, or a conninfo string / postgresql:// URI (PGDATABASE)
    #[arg(short = 'd', long = "dbname", value_name = "DBNAME")]
    pub dbname: Option<String>,

    /// Never prompt for a password
    #[arg(short = 'w', long = "no-password")]
    pub no_password: bool,

    /// Prompt for a password before connecting
    #[arg(short = 'W', long = "password")]
    pub password_prompt: bool,

    /// SET ROLE to this role after connecting
    #[arg(long = "role", value_name = "ROLENAME")]
    pub role: Option<String>,
}
