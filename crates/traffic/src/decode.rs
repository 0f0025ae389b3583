//! Body decoding: chunked transfer-coding and the content-codings seen in captures (gzip, x-gzip,
//! deflate with or without its zlib header, br).
//!
//! Decoding is bounded: a body never expands past [`MAX_DECODED`], so a decompression bomb in a
//! capture costs an error, not the machine's memory.

use std::borrow::Cow;
use std::io::Read;

use crate::model::{trim_ascii, BodyForm, Headers};

/// The most bytes a decoded body may take (256 MiB).
pub const MAX_DECODED: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed chunked body at byte {offset}: {what}")]
    Chunked { offset: usize, what: &'static str },
    #[error("{coding} body could not be decoded: {message}")]
    Coding { coding: String, message: String },
    #[error("unsupported content-coding {0:?}")]
    Unsupported(String),
    #[error("decoded body exceeds {} bytes", MAX_DECODED)]
    TooLarge,
}

/// The body as the application sees it: de-chunked and decoded per the message's headers.
pub fn decoded_body<'a>(
    headers: &Headers,
    body: &'a [u8],
    form: BodyForm,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    if form == BodyForm::Decoded || body.is_empty() {
        return Ok(Cow::Borrowed(body));
    }
    let mut data: Cow<'a, [u8]> = if headers.has_token("transfer-encoding", "chunked") {
        Cow::Owned(dechunk(body)?.0)
    } else {
        Cow::Borrowed(body)
    };
    // Codings are listed in the order they were applied; undo them last to first.
    let codings: Vec<String> = headers
        .get_all("content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(trim_ascii(t)).to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "identity")
        .collect();
    for coding in codings.iter().rev() {
        data = Cow::Owned(decode_coding(coding, &data)?);
    }
    Ok(data)
}

/// Removes chunked framing. Returns the data and the trailer section's raw bytes.
///
/// Accepts chunk extensions, LF-only line ends and a missing final CRLF (captures cut short), but
/// not a missing last chunk: that is a truncated body and an error.
pub fn dechunk(body: &[u8]) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    let mut out = Vec::with_capacity(body.len());
    let mut pos = 0;
    loop {
        let line_end = find_lf(body, pos).ok_or(DecodeError::Chunked {
            offset: pos,
            what: "size line not terminated",
        })?;
        let line = trim_ascii(&body[pos..line_end]);
        let size_part = line.split(|&b| b == b';').next().unwrap_or(line);
        let size = parse_hex(trim_ascii(size_part)).ok_or(DecodeError::Chunked {
            offset: pos,
            what: "bad chunk size",
        })?;
        pos = line_end + 1;
        if size == 0 {
            let trailers = body.get(pos..).unwrap_or_default().to_vec();
            return Ok((out, trailers));
        }
        let end =
            pos.checked_add(size)
                .filter(|&e| e <= body.len())
                .ok_or(DecodeError::Chunked {
                    offset: pos,
                    what: "chunk runs past the end of the body",
                })?;
        if out.len() as u64 + size as u64 > MAX_DECODED {
            return Err(DecodeError::TooLarge);
        }
        out.extend_from_slice(&body[pos..end]);
        pos = end;
        // Chunk data is followed by CRLF (or a bare LF in sloppy servers).
        if body.get(pos) == Some(&b'\r') {
            pos += 1;
        }
        if body.get(pos) == Some(&b'\n') {
            pos += 1;
        }
    }
}

/// The position of the next `\n` at or after `from`.
pub(crate) fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

/// A chunk size: 1 to 15 hex digits (larger sizes cannot be real and would overflow).
pub(crate) fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    let mut v: usize = 0;
    for &b in s {
        let d = (b as char).to_digit(16)? as usize;
        v = v.checked_mul(16)?.checked_add(d)?;
    }
    Some(v)
}

fn decode_coding(coding: &str, data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let err = |e: std::io::Error| DecodeError::Coding {
        coding: coding.to_string(),
        message: e.to_string(),
    };
    match coding {
        "gzip" | "x-gzip" => read_bounded(flate2::read::MultiGzDecoder::new(data)).map_err(err),
        "deflate" => {
            // RFC 9110 says zlib-wrapped, but many servers send raw deflate: try zlib, fall back to raw.
            read_bounded(flate2::read::ZlibDecoder::new(data))
                .or_else(|_| read_bounded(flate2::read::DeflateDecoder::new(data)))
                .map_err(err)
        }
        "br" => read_bounded(brotli::Decompressor::new(data, 4096)).map_err(err),
        other => Err(DecodeError::Unsupported(other.to_string())),
    }
}

fn read_bounded(r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(MAX_DECODED + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_DECODED {
        return Err(std::io::Error::other("decoded body too large"));
    }
    Ok(out)
}

/// Applies chunked framing (one chunk and an empty trailer section), for writers that must turn a
/// decoded body back into wire form.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    if !data.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Applies a content-coding, for writers that must turn a decoded body back into wire form.
/// Returns `None` for a coding mynah cannot produce.
pub fn encode_coding(coding: &str, data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    match coding.to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).ok()?;
            e.finish().ok()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).ok()?;
            e.finish().ok()
        }
        "br" => {
            let mut out = Vec::new();
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).ok()?;
            drop(w);
            Some(out)
        }
        "identity" => Some(data.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_with_extensions_and_trailers() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n";
        let (data, trailers) = dechunk(body).unwrap();
        assert_eq!(data, b"Wikipedia");
        assert_eq!(trailers, b"X-Trailer: yes\r\n\r\n");
    }

    #[test]
    fn truncated_chunk_is_an_error() {
        assert!(matches!(
            dechunk(b"10\r\nshort"),
            Err(DecodeError::Chunked { .. })
        ));
        assert!(dechunk(b"ffffffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn codings_round_trip() {
        let text = b"hello hello hello hello".repeat(10);
        for coding in ["gzip", "deflate", "br"] {
            let enc = encode_coding(coding, &text).unwrap();
            let mut h = Headers::new();
            h.push("Content-Encoding", coding);
            assert_eq!(
                decoded_body(&h, &enc, BodyForm::Wire).unwrap().as_ref(),
                &text[..]
            );
        }
    }

    #[test]
    fn raw_deflate_without_zlib_header() {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"raw deflate").unwrap();
        let raw = e.finish().unwrap();
        let mut h = Headers::new();
        h.push("Content-Encoding", "deflate");
        assert_eq!(
            decoded_body(&h, &raw, BodyForm::Wire).unwrap().as_ref(),
            b"raw deflate"
        );
    }

    #[test]
    fn chunked_then_gzip() {
        let gz = encode_coding("gzip", b"payload").unwrap();
        let mut h = Headers::new();
        h.push("Transfer-Encoding", "chunked");
        h.push("Content-Encoding", "gzip");
        assert_eq!(
            decoded_body(&h, &chunk(&gz), BodyForm::Wire)
                .unwrap()
                .as_ref(),
            b"payload"
        );
    }
}
