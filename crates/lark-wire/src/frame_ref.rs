//! A pbbp2 frame read in place ([`FrameRef`]) and the ack written straight
//! from its bytes ([`AckTemplate`]): the long connection's receive path.
//!
//! Decoding into [`Frame`] allocates a `String` for every header key and
//! value; a client needs four header values to route a frame and echoes the
//! rest untouched in the ack. So the receive path borrows: one pass checks
//! the frame (the rules of [`Frame::decode_bytes`]: wire types, lengths,
//! UTF-8 of the strings, required fields 1–4; it also refuses the
//! deprecated group wire types, which pbbp2 never uses) and keeps the scalar fields
//! and the payload's slice; headers are looked up in the bytes when asked.
//! The ack is the frame's own bytes without its payload, with the `biz_rt`
//! header and the ack payload written where a re-encoding would put them
//! (fields in tag order), so for the frames the platform sends it is byte
//! for byte what [`Frame::into_ack`] encodes.

use crate::frame::{ack_payload, Frame, FrameError, FrameType, MAX_FRAME_BYTES};

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

const TAG_HEADERS: u32 = 5;
const TAG_PAYLOAD: u32 = 8;
const BIZ_RT: &str = "biz_rt";

/// One field as it sits in the bytes.
struct Field<'a> {
    tag: u32,
    /// The value: a varint's value (as read), else 0.
    varint: u64,
    /// A length-delimited field's contents (empty for the others).
    data: &'a [u8],
    /// Where the whole field (key included) starts and ends.
    start: usize,
    end: usize,
}

/// Reads the fields of one message in order.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes, at: 0 }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, FrameError> {
        // Keys, lengths and small numbers: one byte.
        if let Some(&b) = self.bytes.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, FrameError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(FrameError::Invalid("truncated varint"));
            };
            self.at += 1;
            if i == 9 && b > 1 {
                return Err(FrameError::Invalid("varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(FrameError::Invalid("varint overflows 64 bits"))
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(FrameError::Invalid("field runs past the end"))?;
        let data = &self.bytes[self.at..end];
        self.at = end;
        Ok(data)
    }

    #[inline(always)]
    fn next_field(&mut self) -> Result<Option<Field<'a>>, FrameError> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let start = self.at;
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| FrameError::Invalid("tag out of range"))?;
        if tag == 0 {
            return Err(FrameError::Invalid("field number 0"));
        }
        let wire = (key & 7) as u8;
        let (mut varint, mut data) = (0, &[][..]);
        match wire {
            WIRE_VARINT => varint = self.varint()?,
            WIRE_FIXED64 => {
                self.take(8)?;
            }
            WIRE_LEN => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| FrameError::Invalid("length out of range"))?;
                data = self.take(len)?;
            }
            WIRE_FIXED32 => {
                self.take(4)?;
            }
            _ => return Err(FrameError::Invalid("unsupported wire type")),
        }
        Ok(Some(Field {
            tag,
            varint,
            data,
            start,
            end: self.at,
        }))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_field().transpose()
    }
}

/// The wire type a known field of `Frame` must have.
fn expected_wire(tag: u32) -> Option<u8> {
    match tag {
        1..=4 => Some(WIRE_VARINT),
        5..=9 => Some(WIRE_LEN),
        _ => None,
    }
}

/// The wire type of a field, from its key byte(s).
fn wire_of(bytes: &[u8], field: &Field<'_>) -> u8 {
    bytes[field.start] & 7
}

/// A header's key and value (each checked UTF-8).
fn header_of(data: &[u8]) -> Result<(&str, &str), FrameError> {
    let (mut key, mut value) = ("", "");
    let mut fields = Fields::new(data);
    while let Some(f) = fields.next_field()? {
        let wire = data[f.start] & 7;
        match f.tag {
            1 | 2 if wire != WIRE_LEN => return Err(FrameError::Invalid("header field wire type")),
            1 => key = utf8(f.data)?,
            2 => value = utf8(f.data)?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// Whether a header's key (its first field, as encoders write it) is
/// `biz_rt`.
fn is_biz_rt(header: &[u8]) -> bool {
    header.len() >= 2 + BIZ_RT.len()
        && header[0] == 0x0a
        && usize::from(header[1]) == BIZ_RT.len()
        && &header[2..2 + BIZ_RT.len()] == BIZ_RT.as_bytes()
}

fn utf8(data: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(data).map_err(|_| FrameError::Invalid("string is not UTF-8"))
}

/// Headers kept by [`FrameRef::decode`]; any further ones are read from the
/// bytes when asked (the platform sends about six).
const INLINE_HEADERS: usize = 12;

/// A frame decoded in place: scalar fields read, strings checked, headers
/// and payload borrowed from the message.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    bytes: &'a [u8],
    /// The first headers, in order.
    inline: [(&'a str, &'a str); INLINE_HEADERS],
    /// How many headers the frame has (more than `inline` holds: read the
    /// rest from `bytes`).
    header_count: usize,
    /// `seq_id`.
    pub seq_id: u64,
    /// `log_id`.
    pub log_id: u64,
    /// `service`.
    pub service: i32,
    /// `method`.
    pub method: i32,
    /// The payload, if the frame has one.
    pub payload: Option<&'a [u8]>,
}

impl<'a> FrameRef<'a> {
    /// Checks `bytes` as [`Frame::decode_bytes`] does and reads it in place.
    pub fn decode(bytes: &'a [u8]) -> Result<FrameRef<'a>, FrameError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        let mut frame = FrameRef {
            bytes,
            inline: [("", ""); INLINE_HEADERS],
            header_count: 0,
            seq_id: 0,
            log_id: 0,
            service: 0,
            method: 0,
            payload: None,
        };
        let mut seen = 0u8;
        for field in Fields::new(bytes) {
            let field = field?;
            if let Some(wire) = expected_wire(field.tag) {
                if wire_of(bytes, &field) != wire {
                    return Err(FrameError::Invalid("field has the wrong wire type"));
                }
            }
            match field.tag {
                1 => frame.seq_id = field.varint,
                2 => frame.log_id = field.varint,
                // int32 fields are sign-extended varints: the low 32 bits.
                3 => frame.service = field.varint as i32,
                4 => frame.method = field.varint as i32,
                5 => {
                    let header = header_of(field.data)?;
                    if let Some(slot) = frame.inline.get_mut(frame.header_count) {
                        *slot = header;
                    }
                    frame.header_count += 1;
                }
                6 | 7 | 9 => {
                    utf8(field.data)?;
                }
                8 => frame.payload = Some(field.data),
                _ => {}
            }
            if (1..=4).contains(&field.tag) {
                seen |= 1 << field.tag;
            }
        }
        let missing = 0b11110 & !seen;
        if missing != 0 {
            return Err(FrameError::MissingRequired(missing));
        }
        Ok(frame)
    }

    /// The headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        let inline = self.header_count.min(INLINE_HEADERS);
        // Checked by `decode`: these reads cannot fail.
        let rest = (self.header_count > INLINE_HEADERS).then(|| {
            Fields::new(self.bytes)
                .filter_map(Result::ok)
                .filter(|f| f.tag == TAG_HEADERS)
                .skip(INLINE_HEADERS)
                .filter_map(|f| header_of(f.data).ok())
        });
        self.inline[..inline]
            .iter()
            .copied()
            .chain(rest.into_iter().flatten())
    }

    /// The value of the first header called `key`.
    pub fn header(&self, key: &str) -> Option<&'a str> {
        self.headers().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The frame's `type` header.
    pub fn frame_type(&self) -> FrameType {
        FrameType::of(self.header("type"))
    }

    /// The frame as an owned [`Frame`].
    pub fn to_frame(&self) -> Frame {
        Frame::decode_bytes(self.bytes).unwrap_or_default()
    }

    /// What the ack of this frame needs: its bytes without the payload.
    pub fn ack_template(&self) -> AckTemplate {
        let mut bytes = Vec::with_capacity(self.bytes.len() - self.payload.map_or(0, <[u8]>::len));
        let (mut biz_rt_at, mut payload_at) = (None, None);
        for field in Fields::new(self.bytes).filter_map(Result::ok) {
            if field.tag > TAG_HEADERS && biz_rt_at.is_none() {
                biz_rt_at = Some(bytes.len());
            }
            if field.tag > TAG_PAYLOAD && payload_at.is_none() {
                payload_at = Some(bytes.len());
            }
            let replaced = match field.tag {
                TAG_PAYLOAD => true,
                TAG_HEADERS => is_biz_rt(field.data),
                _ => false,
            };
            if !replaced {
                bytes.extend_from_slice(&self.bytes[field.start..field.end]);
            }
        }
        let end = bytes.len();
        AckTemplate {
            biz_rt_at: biz_rt_at.unwrap_or(end),
            payload_at: payload_at.unwrap_or(end),
            bytes,
        }
    }
}

/// The bytes of a delivered frame without its payload, from which its ack
/// is written ([`AckTemplate::ack`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckTemplate {
    bytes: Vec<u8>,
    /// Where the `biz_rt` header goes (after the last header).
    biz_rt_at: usize,
    /// Where the payload goes (before any field numbered above it).
    payload_at: usize,
}

impl AckTemplate {
    /// The ack frame's bytes: the frame echoed with a `biz_rt` header (ms)
    /// and the payload `{"code":code}` (with `data`, the base64 callback
    /// response body, if any), as [`Frame::into_ack`] encodes it.
    pub fn ack(&self, code: u16, biz_rt_ms: u64, response_body: Option<&[u8]>) -> Vec<u8> {
        let mut digits = [0u8; 20];
        let biz_rt = decimal(biz_rt_ms, &mut digits);
        let header_len = 2 + BIZ_RT.len() + 1 + varint_len(biz_rt.len() as u64) + biz_rt.len();
        let mut out = Vec::with_capacity(self.bytes.len() + header_len + 40);
        out.extend_from_slice(&self.bytes[..self.biz_rt_at]);
        put_key(&mut out, TAG_HEADERS);
        put_varint(&mut out, header_len as u64);
        put_bytes_field(&mut out, 1, BIZ_RT.as_bytes());
        put_bytes_field(&mut out, 2, biz_rt);
        out.extend_from_slice(&self.bytes[self.biz_rt_at..self.payload_at]);
        put_ack_payload(&mut out, code, response_body);
        out.extend_from_slice(&self.bytes[self.payload_at..]);
        out
    }

    /// The delivered frame's headers and other fields, without its payload.
    pub fn frame(&self) -> Frame {
        Frame::decode_bytes(&self.bytes).unwrap_or_default()
    }
}

/// Field 8 of the ack: `{"code":N}` (written without allocating), or with
/// `data`, the base64 callback response body.
fn put_ack_payload(out: &mut Vec<u8>, code: u16, response_body: Option<&[u8]>) {
    match response_body {
        None => {
            const OPEN: &[u8] = b"{\"code\":";
            let mut buf = [0u8; 20];
            let digits = decimal(u64::from(code), &mut buf);
            put_key(out, TAG_PAYLOAD);
            put_varint(out, (OPEN.len() + digits.len() + 1) as u64);
            out.extend_from_slice(OPEN);
            out.extend_from_slice(digits);
            out.push(b'}');
        }
        Some(body) => put_bytes_field(out, TAG_PAYLOAD, &ack_payload(code, Some(body))),
    }
}

/// `v` in decimal, written into `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[at..];
        }
    }
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, tag: u32) {
    put_varint(out, u64::from(tag) << 3 | u64::from(WIRE_LEN));
}

fn put_bytes_field(out: &mut Vec<u8>, tag: u32, data: &[u8]) {
    put_key(out, tag);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Header;

    /// The ack vector's event with a payload and a `log_id_new` (field 9,
    /// after the payload).
    fn event() -> Frame {
        Frame {
            payload: Some(b"{\"k\":1}".to_vec()),
            log_id_new: Some("L".into()),
            ..crate::frame::tests::vector_event()
        }
    }

    #[test]
    fn reads_what_frame_reads() {
        let bytes = event().to_bytes();
        let f = FrameRef::decode(&bytes).unwrap();
        assert_eq!((f.seq_id, f.log_id, f.service, f.method), (11, 22, 7, 1));
        assert_eq!(f.payload, Some(&b"{\"k\":1}"[..]));
        assert_eq!(f.header("message_id"), Some("m1"));
        assert_eq!(f.header("nope"), None);
        assert_eq!(f.frame_type(), FrameType::Event);
        assert_eq!(f.headers().count(), 5);
        assert_eq!(f.to_frame(), event());
    }

    #[test]
    fn ack_is_what_into_ack_encodes() {
        let bytes = event().to_bytes();
        let template = FrameRef::decode(&bytes).unwrap().ack_template();
        for body in [None, Some(&b"{\"toast\":{}}"[..])] {
            let expected = event().into_ack(1234, ack_payload(200, body)).to_bytes();
            assert_eq!(template.ack(200, 1234, body), expected);
        }
        let mut headers_only = event();
        headers_only.payload = None;
        assert_eq!(template.frame(), headers_only);
    }

    #[test]
    fn an_existing_biz_rt_header_is_replaced() {
        let mut frame = event();
        frame.headers.push(Header::new("biz_rt", "9"));
        let bytes = frame.to_bytes();
        let ack = FrameRef::decode(&bytes)
            .unwrap()
            .ack_template()
            .ack(200, 5, None);
        let ack = Frame::decode_bytes(&ack).unwrap();
        let biz: Vec<_> = ack.headers.iter().filter(|h| h.key == "biz_rt").collect();
        assert_eq!(biz.len(), 1);
        assert_eq!(biz[0].value, "5");
    }

    #[test]
    fn refuses_what_frame_refuses() {
        let header_only = [
            0x2a, 0x0c, 0x0a, 0x04, b't', b'y', b'p', b'e', 0x12, 0x04, b'p', b'i', b'n', b'g',
        ];
        assert!(matches!(
            FrameRef::decode(&header_only),
            Err(FrameError::MissingRequired(0b11110))
        ));
        assert!(FrameRef::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(FrameRef::decode(&[0x42, 0x7f]).is_err());
        // seq_id as a length-delimited field: the wrong wire type.
        assert!(FrameRef::decode(&[0x0a, 0x00]).is_err());
        // A header key that is not UTF-8.
        let mut bad = Frame::ping(1).to_bytes();
        let at = bad.windows(4).position(|w| w == b"type").unwrap();
        bad[at] = 0xff;
        assert!(Frame::decode_bytes(&bad).is_err());
        assert!(FrameRef::decode(&bad).is_err());
    }
}
