//! The Language Server Protocol's framing: `Content-Length: N` headers, a blank line, N bytes
//! of JSON. Sizes are bounded before anything is allocated, so no peer can make the server
//! reserve memory it announces but never sends.

use std::io::{self, BufRead, Read, Write};

use serde_json::Value;

/// The largest message accepted; a submitted project travels as a path, never inline.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The longest header line accepted.
const MAX_HEADER_LINE: u64 = 8 << 10;

/// One frame read.
#[derive(Debug)]
pub enum Frame {
    /// A JSON value.
    Message(Value),
    /// A well-framed body that is not JSON: answered with a parse error, the stream goes on.
    Unreadable(String),
}

fn broken(problem: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, problem.into())
}

/// The next frame; `None` at the end of the input. A framing error (no length, too long) is an
/// error: the stream cannot be resynchronised after it.
pub fn read_frame(input: &mut impl BufRead) -> io::Result<Option<Frame>> {
    let mut length: Option<usize> = None;
    let mut seen_header = false;
    loop {
        let mut line = String::new();
        let n = input.by_ref().take(MAX_HEADER_LINE).read_line(&mut line)?;
        if n == 0 {
            return if seen_header {
                Err(broken("the input ended inside a message header"))
            } else {
                Ok(None)
            };
        }
        if !line.ends_with('\n') && n as u64 == MAX_HEADER_LINE {
            return Err(broken("a header line is longer than 8 KiB"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if seen_header {
                break;
            }
            continue;
        }
        seen_header = true;
        let Some((name, value)) = line.split_once(':') else {
            return Err(broken(format!("not a header: {line:?}")));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| broken(format!("Content-Length is not a number: {value:?}")))?,
            );
        }
    }
    let length = length.ok_or_else(|| broken("a message without Content-Length"))?;
    if length > MAX_MESSAGE {
        return Err(broken(format!(
            "a message of {length} bytes is over the {} MiB limit",
            MAX_MESSAGE >> 20
        )));
    }
    // Wiped when dropped: a `login` body carries the password.
    let mut body = kflow_core::auth::Zeroizing::new(vec![0; length]);
    input.read_exact(&mut body)?;
    Ok(Some(match serde_json::from_slice(&body) {
        Ok(value) => Frame::Message(value),
        Err(e) => Frame::Unreadable(e.to_string()),
    }))
}

/// Writes one message with its header.
pub fn write_frame(output: &mut impl Write, message: &Value) -> io::Result<()> {
    let body = serde_json::to_vec(message)?;
    write!(output, "Content-Length: {}\r\n\r\n", body.len())?;
    output.write_all(&body)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<io::Result<Option<Frame>>> {
        let mut input = io::BufReader::new(bytes);
        let mut out = Vec::new();
        loop {
            let next = read_frame(&mut input);
            let stop = !matches!(next, Ok(Some(_)));
            out.push(next);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn frames_round_trip_and_headers_are_case_insensitive() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &serde_json::json!({"a": "é"})).unwrap();
        buf.extend_from_slice(b"content-length: 2\r\nContent-Type: x\r\n\r\n{}");
        let got = frames(&buf);
        assert!(matches!(&got[0], Ok(Some(Frame::Message(v))) if v["a"] == "é"));
        assert!(
            matches!(&got[1], Ok(Some(Frame::Message(v))) if v.as_object().unwrap().is_empty())
        );
        assert!(matches!(got[2], Ok(None)));
    }

    #[test]
    fn a_body_that_is_not_json_is_reported_and_the_stream_goes_on() {
        let got = frames(b"Content-Length: 3\r\n\r\nnopContent-Length: 4\r\n\r\nnull");
        assert!(matches!(&got[0], Ok(Some(Frame::Unreadable(_)))));
        assert!(matches!(&got[1], Ok(Some(Frame::Message(Value::Null)))));
    }

    #[test]
    fn a_huge_announced_length_is_refused_before_allocating() {
        let got = frames(b"Content-Length: 4611686018427387904\r\n\r\n{}");
        let err = got[0].as_ref().unwrap_err();
        assert!(err.to_string().contains("over the 64 MiB limit"), "{err}");
        let got = frames(b"Content-Length: x\r\n\r\n");
        assert!(got[0].is_err());
        let got = frames(b"Content-Type: y\r\n\r\n{}");
        assert!(got[0].is_err());
        let got = frames(&[b'a'; 10_000]);
        assert!(got[0].is_err());
    }
}
