//! Gzip on every core: the tar stream is cut into fixed-size blocks, each compressed into its
//! own gzip member on a worker thread, and the members are written in order. Concatenated
//! members are one valid gzip file (RFC 1952 §2.2; `gzip -d`, GNU tar, Python's `gzip` and
//! flate2's `MultiGzDecoder` read them). The cut points depend on the bytes alone, so the output
//! stays byte-for-byte reproducible whatever the thread count.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compression, GzBuilder};

/// Uncompressed bytes per member: large enough that the dictionary reset costs under 0.1% in
/// size, small enough to keep two cores busy on a few-MiB project.
const BLOCK: usize = 1 << 20;

type Block = (usize, Vec<u8>);

pub struct ParallelGzWriter<W: Write + Send + 'static> {
    buffer: Vec<u8>,
    next_index: usize,
    to_workers: Option<SyncSender<Block>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> ParallelGzWriter<W> {
    pub fn new(inner: W, level: Compression) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let (to_workers, blocks) = sync_channel::<Block>(threads * 2);
        let (to_writer, compressed) = sync_channel::<Block>(threads * 2);
        let blocks = Arc::new(Mutex::new(blocks));
        let workers = (0..threads)
            .map(|_| {
                let blocks = Arc::clone(&blocks);
                let to_writer = to_writer.clone();
                std::thread::spawn(move || compress_blocks(&blocks, &to_writer, level))
            })
            .collect();
        drop(to_writer);
        let writer = std::thread::spawn(move || write_in_order(inner, compressed));
        ParallelGzWriter {
            buffer: Vec::with_capacity(BLOCK),
            next_index: 0,
            to_workers: Some(to_workers),
            workers,
            writer: Some(writer),
        }
    }

    fn send_block(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.buffer, Vec::with_capacity(BLOCK));
        let sender = self
            .to_workers
            .as_ref()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        sender
            .send((self.next_index, block))
            .map_err(|_| io::Error::other("compression worker stopped"))?;
        self.next_index += 1;
        Ok(())
    }

    /// Compresses what is left and returns the inner writer once every member is written.
    pub fn finish(mut self) -> io::Result<W> {
        // An empty input still makes one (empty) member, so the file is valid gzip.
        if !self.buffer.is_empty() || self.next_index == 0 {
            self.send_block()?;
        }
        drop(self.to_workers.take());
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("compression worker panicked"))?;
        }
        self.writer
            .take()
            .expect("writer thread")
            .join()
            .map_err(|_| io::Error::other("writer thread panicked"))?
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(BLOCK - self.buffer.len());
        self.buffer.extend_from_slice(&data[..take]);
        if self.buffer.len() == BLOCK {
            self.send_block()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes of each sample that decide whether a block is worth deflating, and how many samples.
const SAMPLE: usize = 16 * 1024;
const SAMPLES: usize = 4;

/// Whether deflating `block` would save next to nothing (already-compressed or random data:
/// weights, images, archives). Judged from a few samples spread over the block, compressed at
/// the fastest level, so the test costs a few percent of a real compression; it depends on the
/// bytes alone, which keeps the output reproducible.
fn incompressible(block: &[u8]) -> bool {
    if block.len() < SAMPLE * SAMPLES {
        return false;
    }
    let stride = block.len() / SAMPLES;
    (0..SAMPLES).all(|i| {
        let sample = &block[i * stride..i * stride + SAMPLE];
        let mut encoder = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(SAMPLE + 64),
            Compression::fast(),
        );
        let size = encoder
            .write_all(sample)
            .and_then(|_| encoder.finish())
            .map(|v| v.len())
            .unwrap_or(0);
        // Deflate keeps less than 3% of such data: stored blocks are then as small, and free.
        size * 100 >= sample.len() * 97
    })
}

fn compress_blocks(blocks: &Mutex<Receiver<Block>>, out: &SyncSender<Block>, level: Compression) {
    loop {
        let next = blocks.lock().map(|rx| rx.recv());
        let Ok(Ok((index, data))) = next else { return };
        let level = if incompressible(&data) {
            Compression::none()
        } else {
            level
        };
        let mut member = GzBuilder::new()
            .mtime(0)
            .write(Vec::with_capacity(data.len() / 2 + 1024), level);
        let compressed = member.write_all(&data).and_then(|_| member.finish());
        match compressed {
            Ok(bytes) => {
                if out.send((index, bytes)).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn write_in_order<W: Write>(mut inner: W, compressed: Receiver<Block>) -> io::Result<W> {
    let mut waiting: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut next = 0;
    for (index, bytes) in compressed {
        waiting.insert(index, bytes);
        while let Some(bytes) = waiting.remove(&next) {
            inner.write_all(&bytes)?;
            next += 1;
        }
    }
    if !waiting.is_empty() {
        return Err(io::Error::other("a compressed block went missing"));
    }
    inner.flush()?;
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn random_blocks_are_stored_and_text_is_deflated() {
        let mut seed: u64 = 0x2545f4914f6cdd1d;
        let random: Vec<u8> = (0..BLOCK)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let text = b"for epoch in range(3): loss = model(batch)\n".repeat(BLOCK / 44);
        assert!(incompressible(&random));
        assert!(!incompressible(&text));
        let mut mixed = text[..BLOCK / 2].to_vec();
        mixed.extend_from_slice(&random[..BLOCK / 2]);
        assert!(
            !incompressible(&mixed),
            "a block that is partly text is deflated"
        );
        let mut gz = ParallelGzWriter::new(Vec::new(), Compression::default());
        gz.write_all(&random).unwrap();
        gz.write_all(&text).unwrap();
        let out = gz.finish().unwrap();
        // Stored: the random block grows by headers only; the text shrinks a lot.
        assert!(out.len() < random.len() + random.len() / 100 && out.len() > random.len());
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), random.len() + text.len());
        assert!(back[..random.len()] == random[..] && back[random.len()..] == text[..]);
    }

    #[test]
    fn members_decode_to_the_input_and_output_is_reproducible() {
        let data: Vec<u8> = (0..(BLOCK * 3 + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let pack = |data: &[u8]| {
            let mut w = ParallelGzWriter::new(Vec::new(), Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        };
        let first = pack(&data);
        assert_eq!(first, pack(&data));
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&first[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        let mut empty = Vec::new();
        flate2::read::MultiGzDecoder::new(&pack(&[])[..])
            .read_to_end(&mut empty)
            .unwrap();
        assert!(empty.is_empty());
    }
}
