//! Benchmark payloads: pseudo-random bytes held once in memory and sent as
//! 1 MiB frames without copying. Variants differ in their first frame only,
//! so each push is new content for the registry without a new gigabyte here.

use bytes::{Bytes, BytesMut};

const FRAME: usize = 1 << 20;

#[derive(Clone)]
pub struct Payload {
    first: Bytes,
    rest: Bytes,
}

impl Payload {
    /// `len` bytes from a xorshift generator: incompressible, reproducible.
    pub fn generate(len: u64, seed: u64) -> Payload {
        let mut buf = BytesMut::zeroed(len as usize);
        // splitmix64 of the seed: nearby seeds start far apart (and never at 0).
        let mut state = {
            let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) | 1
        };
        for word in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let mut all = buf.freeze();
        let rest = all.split_off(FRAME.min(all.len()));
        Payload { first: all, rest }
    }

    /// A small payload of the given bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Payload {
        let mut all = Bytes::from(bytes);
        let rest = all.split_off(FRAME.min(all.len()));
        Payload { first: all, rest }
    }

    /// The same payload with its first frame marked by `n`.
    pub fn variant(&self, n: u64) -> Payload {
        let mut first = BytesMut::from(&self.first[..]);
        for (byte, mark) in first.iter_mut().zip(n.to_le_bytes()) {
            *byte ^= mark.wrapping_add(1);
        }
        Payload {
            first: first.freeze(),
            rest: self.rest.clone(),
        }
    }

    pub fn len(&self) -> u64 {
        (self.first.len() + self.rest.len()) as u64
    }

    /// The payload as 1 MiB frames (shared, not copied).
    pub fn frames(&self) -> impl Iterator<Item = Bytes> + Send + use<> {
        let first = self.first.clone();
        let rest = self.rest.clone();
        let count = rest.len().div_ceil(FRAME);
        std::iter::once(first).chain(
            (0..count).map(move |i| rest.slice(i * FRAME..((i + 1) * FRAME).min(rest.len()))),
        )
    }

    /// The bytes from `start` to `end` as frames, for chunked pushes.
    pub fn range(&self, start: u64, end: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        for frame in self.frames() {
            let frame_end = offset + frame.len() as u64;
            if frame_end > start && offset < end {
                let from = start.saturating_sub(offset) as usize;
                let to = (end.min(frame_end) - offset) as usize;
                out.push(frame.slice(from..to));
            }
            offset = frame_end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(frames: impl Iterator<Item = Bytes>) -> Vec<u8> {
        frames.flat_map(|f| f.to_vec()).collect()
    }

    #[test]
    fn frames_and_ranges_cover_the_payload() {
        let p = Payload::generate(3 * FRAME as u64 + 5, 7);
        let all = concat(p.frames());
        assert_eq!(all.len() as u64, p.len());
        assert_eq!(
            concat(p.range(FRAME as u64 - 3, 2 * FRAME as u64 + 9).into_iter()),
            all[FRAME - 3..2 * FRAME + 9]
        );
        let v = p.variant(1);
        let changed = concat(v.frames());
        assert_ne!(changed[..8], all[..8]);
        assert_eq!(changed[8..], all[8..]);
    }
}
