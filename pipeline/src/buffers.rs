//! A stream read on one thread and consumed on another, through a few reused buffers.
//!
//! Every tool has the same shape on its hot path: something slow to produce (a COPY stream,
//! a decompressor) and something slow to consume (a compressor, a COPY into the server).
//! Running them on two threads keeps two cores busy; four 256 KiB buffers that travel full to
//! the consumer and come back empty bound memory at a megabyte and allocate nothing per buffer.

/// Buffers in flight.
const BUFFERS: usize = 4;
/// Size of each buffer.
const BUFFER_SIZE: usize = 256 * 1024;

/// Runs `read` (fill a buffer, return how many bytes; 0 at the end) on its own thread and
/// `consume` on this one. Returns the consumer's outcome and the reader's: when the consumer
/// fails the reader stops at its next buffer and returns `Ok`, when the reader fails the
/// consumer gets no more buffers.
pub fn pipelined<E: Send>(
    mut read: impl FnMut(&mut [u8]) -> Result<usize, E> + Send,
    mut consume: impl FnMut(&[u8]) -> Result<(), E>,
) -> (Result<(), E>, Result<(), E>) {
    let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        empty_tx
            .send(vec![0u8; BUFFER_SIZE])
            .expect("the channel has room for every buffer");
    }
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || -> Result<(), E> {
            for mut buf in empty_rx.iter() {
                let n = read(&mut buf)?;
                if n == 0 || full_tx.send((buf, n)).is_err() {
                    // At the end, or the consumer stopped (its error is reported by it).
                    return Ok(());
                }
            }
            Ok(())
        });
        let mut consumed = Ok(());
        for (buf, n) in full_rx.iter() {
            if let Err(e) = consume(&buf[..n]) {
                consumed = Err(e);
                break;
            }
            let _ = empty_tx.send(buf);
        }
        // Dropping the receivers ends the reader if the consumer failed.
        drop(full_rx);
        drop(empty_tx);
        let read = reading.join().expect("the reader thread does not panic");
        (consumed, read)
    })
}

#[cfg(test)]
mod tests {
    use super::pipelined;

    #[test]
    fn every_byte_arrives_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut at = 0;
        let mut got = Vec::new();
        let (c, r) = pipelined::<()>(
            |buf| {
                let n = buf.len().min(data.len() - at).min(100_000);
                buf[..n].copy_from_slice(&data[at..at + n]);
                at += n;
                Ok(n)
            },
            |b| {
                got.extend_from_slice(b);
                Ok(())
            },
        );
        assert_eq!((c, r), (Ok(()), Ok(())));
        assert_eq!(got, data);
    }

    #[test]
    fn either_side_failing_stops_both() {
        let (c, r) = pipelined(|buf| Ok(buf.len()), |_| Err("consumer"));
        assert_eq!((c, r), (Err("consumer"), Ok(())));
        let mut calls = 0;
        let (c, r) = pipelined(
            |buf| {
                calls += 1;
                if calls == 3 {
                    Err("reader")
                } else {
                    Ok(buf.len())
                }
            },
            |_| Ok(()),
        );
        assert_eq!((c, r), (Ok(()), Err("reader")));
    }
}
