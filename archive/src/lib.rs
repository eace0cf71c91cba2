//! pg_dump archive formats and compression codecs.
