//! Framing and signing: `[ids…, "<IDS|MSG>", hmac, header, parent_header, metadata, content,
//! buffers…]`. Only the four JSON frames are signed (not the buffers, unlike evcxr).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::error::{KernelError, Result};
use crate::messages::Header;

pub const DELIMITER: &[u8] = b"<IDS|MSG>";

/// Messages larger than this are refused. The socket layer (`zmtp::Limits`) already closes a
/// connection that announces more, before reading it; this guards callers that decode frames
/// from elsewhere.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How many signatures are remembered to refuse replays, as jupyter_client's Session
/// (`digest_history_size`); the oldest tenth is forgotten when it is full.
const SIGNATURE_HISTORY: usize = 1 << 16;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies with the connection file's key. An empty key means "no signing" per the
/// spec: we then send an empty signature and accept any. Clones share one history of the
/// signatures seen, so a message replayed on any socket is refused.
#[derive(Clone)]
pub struct Signer {
    mac: Option<HmacSha256>,
    seen: Arc<Mutex<SeenSignatures>>,
}

#[derive(Default)]
struct SeenSignatures {
    set: HashSet<Vec<u8>>,
    order: VecDeque<Vec<u8>>,
}

impl SeenSignatures {
    /// False when `signature` was seen before.
    fn insert(&mut self, signature: &[u8]) -> bool {
        if self.set.contains(signature) {
            return false;
        }
        if self.order.len() >= SIGNATURE_HISTORY {
            for old in self.order.drain(..SIGNATURE_HISTORY / 10) {
                self.set.remove(&old);
            }
        }
        self.set.insert(signature.to_vec());
        self.order.push_back(signature.to_vec());
        true
    }
}

impl Signer {
    pub fn new(key: &str) -> Self {
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC accepts keys of any length, so this cannot fail.
            HmacSha256::new_from_slice(key.as_bytes()).ok()
        };
        Signer {
            mac,
            seen: Arc::default(),
        }
    }

    /// Records a verified signature; false when it was already used (a replay). Without a key
    /// there is nothing to tell messages apart by, as in jupyter_client.
    fn first_use(&self, signature: &[u8]) -> bool {
        if self.mac.is_none() {
            return true;
        }
        self.seen
            .lock()
            .map(|mut seen| seen.insert(signature))
            .unwrap_or(false)
    }

    pub fn sign(&self, parts: &[&[u8]]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for p in parts {
                    mac.update(p);
                }
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Constant-time comparison (hmac's `verify_slice` uses `subtle`), so a peer cannot learn
    /// the signature byte by byte from timing.
    pub fn verify(&self, signature: &[u8], parts: &[&[u8]]) -> bool {
        let Some(mac) = &self.mac else { return true };
        let Ok(expected) = hex::decode(signature) else {
            return false;
        };
        let mut mac = mac.clone();
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(&expected).is_ok()
    }
}

/// A verified incoming message. `content` stays JSON until the handler for its msg_type parses
/// it into the typed request; `parent_header` and `metadata` are only echoed or ignored.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub identities: Vec<Bytes>,
    pub header: Header,
    pub parent_header: Value,
    pub metadata: Value,
    pub content: Value,
    pub buffers: Vec<Bytes>,
}

impl Incoming {
    /// Parse and verify frames. Every failure is an error value (never a panic) that the socket
    /// loop logs before dropping the message.
    pub fn decode(frames: Vec<Bytes>, signer: &Signer) -> Result<Self> {
        let size: usize = frames.iter().map(|f| f.len()).sum();
        if size > MAX_MESSAGE_BYTES {
            return Err(KernelError::Oversized {
                size,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let delim = frames
            .iter()
            .position(|f| f.as_ref() == DELIMITER)
            .ok_or_else(|| KernelError::Malformed("no <IDS|MSG> delimiter".into()))?;
        let rest = &frames[delim + 1..];
        if rest.len() < 5 {
            return Err(KernelError::Malformed(format!(
                "expected signature and 4 JSON frames after the delimiter, got {}",
                rest.len()
            )));
        }
        let parts = [&rest[1][..], &rest[2][..], &rest[3][..], &rest[4][..]];
        if !signer.verify(&rest[0], &parts) {
            return Err(KernelError::BadSignature);
        }
        if !signer.first_use(&rest[0]) {
            return Err(KernelError::Replayed);
        }
        let header: Header = serde_json::from_slice(&rest[1])?;
        let parent_header: Value = serde_json::from_slice(&rest[2])?;
        let metadata: Value = serde_json::from_slice(&rest[3])?;
        let content: Value = serde_json::from_slice(&rest[4])?;
        if !content.is_object() {
            return Err(KernelError::Malformed(
                "content is not a JSON object".into(),
            ));
        }
        Ok(Incoming {
            identities: frames[..delim].to_vec(),
            header,
            parent_header,
            metadata,
            content,
            buffers: rest[5..].to_vec(),
        })
    }

    /// The message as a session's remote kernel gets it: the four JSON parts and the buffers.
    pub fn relay_parts(&self) -> Vec<Vec<u8>> {
        let json = |v: &Value| serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
        let mut parts = vec![
            serde_json::to_vec(&self.header).unwrap_or_else(|_| b"{}".to_vec()),
            json(&self.parent_header),
            json(&self.metadata),
            json(&self.content),
        ];
        parts.extend(self.buffers.iter().map(|b| b.to_vec()));
        parts
    }

    /// The parent_header for messages caused by this one: the request's own header.
    pub fn as_parent(&self) -> Value {
        serde_json::to_value(&self.header).unwrap_or(Value::Null)
    }
}

/// A message to send: routing prefix (identities, or the iopub topic) plus the signed parts.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub prefix: Vec<Bytes>,
    pub header: Header,
    pub parent_header: Value,
    pub content: Value,
    /// A session's remote kernel's message, passed on as it came (header, parent header,
    /// metadata, content, buffers), only signed again with this kernel's key.
    relayed: Option<Vec<Bytes>>,
}

impl Outgoing {
    pub fn new(
        prefix: Vec<Bytes>,
        msg_type: &str,
        session: &str,
        parent_header: Value,
        content: impl Serialize,
    ) -> Self {
        Outgoing {
            prefix,
            header: Header::new(msg_type, session),
            parent_header,
            // Our own content types always serialise; Null only guards against future misuse.
            content: serde_json::to_value(content).unwrap_or(Value::Null),
            relayed: None,
        }
    }

    /// A remote kernel's message (at least the four JSON parts) to pass on unchanged.
    pub fn relayed(prefix: Vec<Bytes>, parts: Vec<Bytes>) -> Self {
        Outgoing {
            prefix,
            header: Header::new("relayed", ""),
            parent_header: Value::Null,
            content: Value::Null,
            relayed: Some(parts),
        }
    }

    pub fn encode(&self, signer: &Signer) -> Vec<Bytes> {
        if let Some(parts) = self.relayed.as_ref().filter(|p| p.len() >= 4) {
            let sig = signer.sign(&[&parts[0], &parts[1], &parts[2], &parts[3]]);
            let mut frames = self.prefix.clone();
            frames.push(Bytes::from_static(DELIMITER));
            frames.push(Bytes::from(sig.into_bytes()));
            frames.extend(parts.iter().cloned());
            return frames;
        }
        let header = serde_json::to_vec(&self.header).unwrap_or_else(|_| b"{}".to_vec());
        let parent = if self.parent_header.is_object() {
            serde_json::to_vec(&self.parent_header).unwrap_or_else(|_| b"{}".to_vec())
        } else {
            b"{}".to_vec()
        };
        let metadata = b"{}".to_vec();
        let content = serde_json::to_vec(&self.content).unwrap_or_else(|_| b"{}".to_vec());
        let sig = signer.sign(&[&header, &parent, &metadata, &content]);
        let mut frames = self.prefix.clone();
        frames.push(Bytes::from_static(DELIMITER));
        frames.push(Bytes::from(sig.into_bytes()));
        frames.push(Bytes::from(header));
        frames.push(Bytes::from(parent));
        frames.push(Bytes::from(metadata));
        frames.push(Bytes::from(content));
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(signer: &Signer) -> Vec<Bytes> {
        let out = Outgoing::new(
            vec![Bytes::from_static(b"client-id")],
            "kernel_info_request",
            "sess",
            Value::Object(Default::default()),
            serde_json::json!({}),
        );
        out.encode(signer)
    }

    #[test]
    fn round_trip_with_signature() {
        let s = Signer::new("secret");
        let msg = Incoming::decode(sample(&s), &s).unwrap();
        assert_eq!(msg.header.msg_type, "kernel_info_request");
        assert_eq!(msg.identities, vec![Bytes::from_static(b"client-id")]);
    }

    #[test]
    fn wrong_key_or_tampering_is_rejected() {
        let s = Signer::new("secret");
        let frames = sample(&s);
        assert!(matches!(
            Incoming::decode(frames.clone(), &Signer::new("other")),
            Err(KernelError::BadSignature)
        ));
        let mut tampered = frames.clone();
        let n = tampered.len();
        tampered[n - 1] = Bytes::from_static(b"{\"x\":1}");
        assert!(matches!(
            Incoming::decode(tampered, &s),
            Err(KernelError::BadSignature)
        ));
        let mut nonhex = frames;
        nonhex[2] = Bytes::from_static(b"zz");
        assert!(matches!(
            Incoming::decode(nonhex, &s),
            Err(KernelError::BadSignature)
        ));
    }

    #[test]
    fn a_replayed_message_is_refused() {
        let s = Signer::new("secret");
        let frames = sample(&s);
        assert!(Incoming::decode(frames.clone(), &s).is_ok());
        assert!(matches!(
            Incoming::decode(frames.clone(), &s.clone()),
            Err(KernelError::Replayed)
        ));
        // A fresh message (new msg_id and date, so a new signature) still goes through.
        assert!(Incoming::decode(sample(&s), &s).is_ok());
        let mut seen = SeenSignatures::default();
        for i in 0..SIGNATURE_HISTORY + 1 {
            assert!(seen.insert(format!("{i}").as_bytes()));
        }
        assert!(seen.order.len() <= SIGNATURE_HISTORY);
        assert!(!seen.insert(format!("{SIGNATURE_HISTORY}").as_bytes()));
    }

    #[test]
    fn empty_key_means_unsigned() {
        let s = Signer::new("");
        let frames = sample(&s);
        assert_eq!(frames[2].len(), 0);
        assert!(Incoming::decode(frames, &s).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let s = Signer::new("k");
        let cases: Vec<Vec<Bytes>> = vec![
            vec![],
            vec![Bytes::from_static(DELIMITER)],
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            vec![
                Bytes::from_static(DELIMITER),
                Bytes::new(),
                Bytes::new(),
                Bytes::new(),
                Bytes::new(),
                Bytes::new(),
            ],
        ];
        for c in cases {
            assert!(Incoming::decode(c, &s).is_err());
        }
        // Random frames: a cheap fuzz, deterministic so failures reproduce.
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let mut frames = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let nframes = (seed % 9) as usize;
            for i in 0..nframes {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % 40) as usize;
                let bytes: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8).collect();
                if i == 1 && seed.is_multiple_of(3) {
                    frames.push(Bytes::from_static(DELIMITER));
                } else {
                    frames.push(Bytes::from(bytes));
                }
            }
            let _ = Incoming::decode(frames, &s);
            let _ = Incoming::decode(Vec::new(), &Signer::new(""));
        }
    }

    #[test]
    fn unsigned_json_with_empty_key_must_still_be_objects() {
        let s = Signer::new("");
        let frames = vec![
            Bytes::from_static(DELIMITER),
            Bytes::new(),
            Bytes::from_static(b"{\"msg_type\":\"x\"}"),
            Bytes::from_static(b"{}"),
            Bytes::from_static(b"{}"),
            Bytes::from_static(b"[1,2]"),
        ];
        assert!(Incoming::decode(frames, &s).is_err());
    }
}
