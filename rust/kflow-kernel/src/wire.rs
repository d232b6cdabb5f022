//! Framing and signing: `[ids…, "<IDS|MSG>", hmac, header, parent_header, metadata, content,
//! buffers…]`. Only the four JSON frames are signed (not the buffers, unlike evcxr).

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::error::{KernelError, Result};
use crate::messages::Header;

pub const DELIMITER: &[u8] = b"<IDS|MSG>";

/// Messages larger than this are dropped unread. zeromq has already buffered them by then, so
/// this only bounds the JSON parsing work and memory that one request can cost us.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies with the connection file's key. An empty key means "no signing" per the
/// spec: we then send an empty signature and accept any.
#[derive(Clone)]
pub struct Signer {
    mac: Option<HmacSha256>,
}

impl Signer {
    pub fn new(key: &str) -> Self {
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC accepts keys of any length, so this cannot fail.
            HmacSha256::new_from_slice(key.as_bytes()).ok()
        };
        Signer { mac }
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
            return Err(KernelError::Oversized { size, limit: MAX_MESSAGE_BYTES });
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
        let header: Header = serde_json::from_slice(&rest[1])?;
        let parent_header: Value = serde_json::from_slice(&rest[2])?;
        let metadata: Value = serde_json::from_slice(&rest[3])?;
        let content: Value = serde_json::from_slice(&rest[4])?;
        if !content.is_object() {
            return Err(KernelError::Malformed("content is not a JSON object".into()));
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
        }
    }

    pub fn encode(&self, signer: &Signer) -> Vec<Bytes> {
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
        assert!(matches!(Incoming::decode(tampered, &s), Err(KernelError::BadSignature)));
        let mut nonhex = frames;
        nonhex[2] = Bytes::from_static(b"zz");
        assert!(matches!(Incoming::decode(nonhex, &s), Err(KernelError::BadSignature)));
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
            vec![Bytes::from_static(DELIMITER), Bytes::new(), Bytes::new(), Bytes::new(), Bytes::new(), Bytes::new()],
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
