//! cbrestore (being written).
