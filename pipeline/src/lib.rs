//! The COPY data pipeline that cbcopyout, cbdump and cbrestore share: what to read in which
//! chunks ([`plan`]), where rows end ([`rows`]), files written under temporary names and
//! renamed when complete ([`sink`]), a stream read on one thread and consumed on another
//! ([`buffers`]), progress on stderr ([`progress`]), file names for any identifier
//! ([`naming`]) and sizes on the command line ([`size`]).
//!
//! It lives in its own crate because no verb crate may import another: before, dump and
//! restore reached into the copyout verb for these.

pub mod buffers;
pub mod naming;
pub mod plan;
pub mod progress;
pub mod rows;
pub mod sink;
pub mod size;

pub use buffers::pipelined;
