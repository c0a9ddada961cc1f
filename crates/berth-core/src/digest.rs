//! Content digests (`sha256:…`, `sha512:…`) and the incremental hasher that
//! computes them while bytes stream through.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

/// The digest algorithms registered by the OCI image spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest: a registered algorithm and its lower-case hex encoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest must be <algorithm>:<hex>")]
    Malformed,
    #[error("unsupported digest algorithm '{0}'")]
    UnsupportedAlgorithm(String),
    #[error("digest hex part must be {0} lower-case hex characters")]
    BadHex(usize),
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        // The image spec's grammar: algorithm-component [+._-] separated, lower case.
        let grammar_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !grammar_ok || hex.is_empty() {
            return Err(DigestError::Malformed);
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let len = algorithm.hex_len();
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex(len));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// An incremental hasher whose state can be saved between requests, so that a
/// chunked upload survives a restart or continues on another node without
/// re-reading the bytes it already received.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

#[derive(Debug, thiserror::Error)]
#[error("saved hash state is corrupt")]
pub struct HashStateError;

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// The hasher's state: the algorithm name, a colon, then the state bytes.
    pub fn save(&self) -> Vec<u8> {
        let (name, state) = match self {
            Hasher::Sha256(h) => ("sha256", h.serialize().to_vec()),
            Hasher::Sha512(h) => ("sha512", h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(name.len() + 1 + state.len());
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&state);
        out
    }

    /// A hasher saved by [`Hasher::save`]; refused if it does not parse or
    /// claims more data than any upload holds.
    pub fn restore(saved: &[u8]) -> Result<Hasher, HashStateError> {
        let colon = saved
            .iter()
            .position(|&b| b == b':')
            .ok_or(HashStateError)?;
        let (name, state) = (&saved[..colon], &saved[colon + 1..]);
        // The serialized state starts with the chaining value (32 bytes for
        // SHA-256, 64 for SHA-512), then the count of blocks hashed (u64,
        // u128 LE). A count no upload can reach is a corrupted state, whose
        // `finish` would overflow computing the length in bits.
        let blocks = |at: usize, width: usize| -> Option<u128> {
            let raw = state.get(at..at + width)?;
            let mut le = [0u8; 16];
            le[..width].copy_from_slice(raw);
            Some(u128::from_le_bytes(le))
        };
        let plausible = match name {
            b"sha256" => blocks(32, 8),
            b"sha512" => blocks(64, 16),
            _ => None,
        }
        .is_some_and(|n| n <= MAX_RESTORED_BLOCKS);
        if !plausible {
            return Err(HashStateError);
        }
        match name {
            b"sha256" => {
                let state =
                    SerializedState::<sha2::Sha256>::try_from(state).map_err(|_| HashStateError)?;
                sha2::Sha256::deserialize(&state)
                    .map(Hasher::Sha256)
                    .map_err(|_| HashStateError)
            }
            b"sha512" => {
                let state =
                    SerializedState::<sha2::Sha512>::try_from(state).map_err(|_| HashStateError)?;
                sha2::Sha512::deserialize(&state)
                    .map(Hasher::Sha512)
                    .map_err(|_| HashStateError)
            }
            _ => Err(HashStateError),
        }
    }
}

/// Blocks a restored hash state may claim: 2^40 blocks is 64 TiB of SHA-256
/// input, far past any layer, and far from where the length in bits overflows.
const MAX_RESTORED_BLOCKS: u128 = 1 << 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_state_claiming_impossible_lengths_is_refused() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut hasher = Hasher::new(algorithm);
            hasher.update(&[7u8; 10 * 128]);
            let saved = hasher.save();
            let colon = saved.iter().position(|&b| b == b':').unwrap() + 1;
            let (at, width, blocks) = match algorithm {
                Algorithm::Sha256 => (32, 8, 20u128),
                Algorithm::Sha512 => (64, 16, 10u128),
            };
            // The layout this check reads: the block count where it says.
            let mut le = [0u8; 16];
            le[..width].copy_from_slice(&saved[colon + at..colon + at + width]);
            assert_eq!(u128::from_le_bytes(le), blocks, "{algorithm:?}");
            assert!(Hasher::restore(&saved).is_ok());
            let mut corrupted = saved.clone();
            corrupted[colon + at..colon + at + width].fill(0xff);
            assert!(Hasher::restore(&corrupted).is_err(), "{algorithm:?}");
        }
        // The fuzzer's find: a state whose finish overflowed.
        let mut found = b"sha256:".to_vec();
        found.extend_from_slice(&[0u8; 32]);
        found.extend_from_slice(&u64::MAX.to_le_bytes());
        found.extend_from_slice(&[0u8; 65]);
        assert!(Hasher::restore(&found).is_err());
    }

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_registered_algorithms() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        let sha512 = Digest::of(Algorithm::Sha512, b"");
        assert_eq!(sha512.to_string().parse::<Digest>().unwrap(), sha512);
    }

    #[test]
    fn rejects_bad_digests() {
        assert_eq!("sha256".parse::<Digest>(), Err(DigestError::Malformed));
        assert_eq!("sha256:".parse::<Digest>(), Err(DigestError::Malformed));
        assert_eq!(":abc".parse::<Digest>(), Err(DigestError::Malformed));
        assert_eq!("SHA256:abc".parse::<Digest>(), Err(DigestError::Malformed));
        assert_eq!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm("md5".into()))
        );
        assert_eq!("sha256:abc".parse::<Digest>(), Err(DigestError::BadHex(64)));
        let upper = EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256");
        assert_eq!(upper.parse::<Digest>(), Err(DigestError::BadHex(64)));
    }

    #[test]
    fn empty_input_hashes_to_known_value() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"").to_string(), EMPTY_SHA256);
    }

    #[test]
    fn saved_state_resumes_to_the_same_digest() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
            let mut first = Hasher::new(algorithm);
            first.update(&data[..3333]);
            let mut resumed = Hasher::restore(&first.save()).unwrap();
            resumed.update(&data[3333..]);
            assert_eq!(resumed.finish(), Digest::of(algorithm, &data));
        }
    }

    #[test]
    fn corrupt_state_is_refused() {
        assert!(Hasher::restore(b"sha256:short").is_err());
        assert!(Hasher::restore(b"md5:whatever").is_err());
        assert!(Hasher::restore(b"nocolon").is_err());
    }
}
