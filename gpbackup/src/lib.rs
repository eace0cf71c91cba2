//! gpbackup backup sets.
