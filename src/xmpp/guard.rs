//! Keeps one over-long XML name or attribute value from ending the stream.
//!
//! tokio-xmpp's XML reader (rxml) refuses any name or attribute value
//! longer than 8 KiB with "restricted xml: long name or reference", and a
//! refused token ends the whole stream. The server delivers what any
//! contact publishes, and pushes the contact's last item again on every
//! reconnect: one contact with one 70,000-character `name` could keep a
//! user offline for good. The reader's limit cannot be configured through
//! tokio-xmpp, so this sits between the socket (or TLS) and the reader and
//! rewrites, in the bytes the server sends:
//!
//! - an attribute value longer than [`MAX_TOKEN`] bytes: cut to its first
//!   [`MAX_TOKEN`] bytes (at a character and entity boundary); every value
//!   of the shares protocol has a far smaller bound, so the entry is then
//!   refused on its own by the normal validation, naming the attribute;
//! - an attribute name longer than that: the attribute is left out;
//! - an element name longer than that: replaced by [`LONG_NAME`] (the end
//!   tag too, so the document stays well-formed); nobody knows that element.
//!
//! Everything else passes byte for byte. Writes are untouched. The input is
//! what the server sends, which is well-formed XML; this is a small lexer
//! for tags, not a validator.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest name or attribute value passed on, in bytes (rxml's limit
/// is 8192; anything in the shares protocol is far shorter).
pub const MAX_TOKEN: usize = 4096;
/// What an over-long element name becomes.
pub const LONG_NAME: &str = "bitween-long-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tags.
    Text,
    /// Just after `<`.
    TagOpen,
    /// `<!...` or `<?...`, passed through to the next `>`.
    Special,
    /// The name of a start tag (`end`: of an end tag).
    Name { end: bool },
    /// After an end tag's name, up to `>`.
    EndRest,
    /// Inside a start tag, between attributes.
    InTag,
    /// An attribute's name.
    AttrName,
    /// After an attribute's name, before `=` (or after `=`, before the
    /// quote: `eq`).
    AfterAttrName { eq: bool },
    /// Inside an attribute value quoted with `quote`.
    Value { quote: u8 },
}

/// The rewriting state between reads (see the module doc).
#[derive(Debug)]
pub struct Rewriter {
    state: State,
    /// The name being read (a tag's or an attribute's), up to MAX_TOKEN.
    name: Vec<u8>,
    /// The name read so far is longer than MAX_TOKEN.
    name_long: bool,
    /// The current attribute is left out (its name was too long).
    dropping: bool,
    /// Bytes of the current attribute value passed on.
    value_len: usize,
    /// Inside an entity reference (`&...;`) of the current value.
    in_entity: bool,
    /// The current value was cut: the rest up to the quote is dropped.
    cut: bool,
    /// How many tokens were rewritten (for the log).
    pub rewritten: u64,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            state: State::Text,
            name: Vec::new(),
            name_long: false,
            dropping: false,
            value_len: 0,
            in_entity: false,
            cut: false,
            rewritten: 0,
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Rewriter {
    /// Rewrites `input` onto the end of `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    fn push_name(&mut self, b: u8) {
        if self.name.len() < MAX_TOKEN {
            self.name.push(b);
        } else {
            self.name_long = true;
        }
    }

    /// Writes the element name read so far (or its stand-in).
    fn flush_element_name(&mut self, out: &mut Vec<u8>) {
        if self.name_long {
            self.rewritten += 1;
            out.extend_from_slice(LONG_NAME.as_bytes());
        } else {
            out.extend_from_slice(&self.name);
        }
        self.name.clear();
        self.name_long = false;
    }

    /// The attribute name is complete: written, or the attribute dropped.
    fn flush_attr_name(&mut self, out: &mut Vec<u8>) {
        self.dropping = self.name_long;
        if self.dropping {
            self.rewritten += 1;
        } else {
            out.push(b' ');
            out.extend_from_slice(&self.name);
        }
        self.name.clear();
        self.name_long = false;
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Text => {
                out.push(b);
                if b == b'<' {
                    self.state = State::TagOpen;
                }
            }
            State::TagOpen => match b {
                b'/' => {
                    out.push(b);
                    self.state = State::Name { end: true };
                }
                b'!' | b'?' => {
                    out.push(b);
                    self.state = State::Special;
                }
                _ => {
                    self.push_name(b);
                    self.state = State::Name { end: false };
                }
            },
            State::Special => {
                out.push(b);
                if b == b'>' {
                    self.state = State::Text;
                }
            }
            State::Name { end } => {
                if is_space(b) || b == b'>' || b == b'/' {
                    self.flush_element_name(out);
                    // Attributes bring their own space.
                    if !is_space(b) || end {
                        out.push(b);
                    }
                    self.state = match (end, b) {
                        (_, b'>') => State::Text,
                        (true, _) => State::EndRest,
                        (false, _) => State::InTag,
                    };
                } else {
                    self.push_name(b);
                }
            }
            State::EndRest => {
                out.push(b);
                if b == b'>' {
                    self.state = State::Text;
                }
            }
            State::InTag => {
                if is_space(b) {
                    // Attributes are written with one space each.
                } else if b == b'>' {
                    out.push(b);
                    self.state = State::Text;
                } else if b == b'/' {
                    out.push(b);
                } else {
                    self.push_name(b);
                    self.state = State::AttrName;
                }
            }
            State::AttrName => {
                if b == b'=' {
                    self.flush_attr_name(out);
                    if !self.dropping {
                        out.push(b);
                    }
                    self.state = State::AfterAttrName { eq: true };
                } else if is_space(b) {
                    self.flush_attr_name(out);
                    self.state = State::AfterAttrName { eq: false };
                } else {
                    self.push_name(b);
                }
            }
            State::AfterAttrName { eq } => {
                if b == b'=' && !eq {
                    if !self.dropping {
                        out.push(b);
                    }
                    self.state = State::AfterAttrName { eq: true };
                } else if (b == b'"' || b == b'\'') && eq {
                    if !self.dropping {
                        out.push(b);
                    }
                    self.value_len = 0;
                    self.in_entity = false;
                    self.cut = false;
                    self.state = State::Value { quote: b };
                }
            }
            State::Value { quote } => {
                if b == quote {
                    if !self.dropping {
                        out.push(b);
                    }
                    self.dropping = false;
                    self.state = State::InTag;
                    return;
                }
                if self.dropping || self.cut {
                    return;
                }
                // Cut only where a character and an entity end.
                let boundary = !self.in_entity && (b & 0xc0) != 0x80;
                if self.value_len >= MAX_TOKEN && boundary {
                    self.cut = true;
                    self.rewritten += 1;
                    return;
                }
                match b {
                    b'&' => self.in_entity = true,
                    b';' => self.in_entity = false,
                    _ => {}
                }
                out.push(b);
                self.value_len += 1;
            }
        }
    }
}

/// A transport whose incoming bytes pass through a [`Rewriter`].
pub struct XmlGuard<S> {
    inner: S,
    rewriter: Rewriter,
    raw: Vec<u8>,
    pending: Vec<u8>,
    pending_at: usize,
    reported: u64,
}

impl<S> XmlGuard<S> {
    pub fn new(inner: S) -> Self {
        XmlGuard {
            inner,
            rewriter: Rewriter::default(),
            raw: vec![0; 16 * 1024],
            pending: Vec::new(),
            pending_at: 0,
            reported: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for XmlGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pending_at < this.pending.len() {
                let n = (this.pending.len() - this.pending_at).min(buf.remaining());
                buf.put_slice(&this.pending[this.pending_at..this.pending_at + n]);
                this.pending_at += n;
                return Poll::Ready(Ok(()));
            }
            this.pending.clear();
            this.pending_at = 0;
            let mut raw = ReadBuf::new(&mut this.raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut raw) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let filled = raw.filled().len();
                    if filled == 0 {
                        return Poll::Ready(Ok(())); // end of stream
                    }
                    this.rewriter.feed(&this.raw[..filled], &mut this.pending);
                    if this.rewriter.rewritten > this.reported {
                        this.reported = this.rewriter.rewritten;
                        tracing::warn!(
                            "shortened an over-long XML name or value from the server (so far {}); the entry it was in is dropped",
                            this.reported
                        );
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for XmlGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(input: &str, chunk: usize) -> String {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        for part in input.as_bytes().chunks(chunk.max(1)) {
            r.feed(part, &mut out);
        }
        String::from_utf8(out).expect("still UTF-8")
    }

    /// Parses `xml` as minidom would, so the result is known well-formed.
    fn parses(xml: &str) -> minidom::Element {
        xml.parse().unwrap_or_else(|e| panic!("{e}: {xml}"))
    }

    #[test]
    fn ordinary_xml_passes_unchanged_apart_from_spacing_in_tags() {
        let xml =
            "<a xmlns='urn:x' b=\"1 &amp; 2\" c='&lt;&gt;'><b/><!-- c --><c d='x'>t&amp;t</c></a>";
        let out = rewrite(xml, 3);
        assert_eq!(
            out,
            "<a xmlns='urn:x' b=\"1 &amp; 2\" c='&lt;&gt;'><b/><!-- c --><c d='x'>t&amp;t</c></a>"
        );
        let spaced = "<a  xmlns = 'urn:x'\n b='1' ></a >";
        assert_eq!(parses(&rewrite(spaced, 1)), parses(spaced));
    }

    #[test]
    fn long_values_are_cut_long_names_replaced_and_the_rest_kept() {
        let long_value = "é".repeat(40_000);
        let long_attr = "a".repeat(9000);
        let long_elem = "e".repeat(9000);
        let xml = format!(
            "<r xmlns='urn:x'><s name='{long_value}' size='1'/><s name='ok' {long_attr}='v' size='2'/>\
             <{long_elem} x='1'><in/></{long_elem}><s name='&amp;{}' size='3'/></r>",
            "&amp;".repeat(2000)
        );
        for chunk in [1, 7, 4096, usize::MAX >> 1] {
            let out = rewrite(&xml, chunk);
            let root = parses(&out);
            let items: Vec<_> = root.children().collect();
            assert_eq!(items.len(), 4, "{chunk}");
            let first = items[0].attr("name").unwrap();
            assert!(first.len() <= MAX_TOKEN && first.len() > 1024, "{chunk}");
            assert!(first.chars().all(|c| c == 'é'));
            assert_eq!(items[0].attr("size"), Some("1"));
            assert_eq!(items[1].attr("name"), Some("ok"));
            assert_eq!(
                items[1].attrs().into_iter().count(),
                2,
                "the long attribute is left out"
            );
            assert_eq!(items[2].name(), LONG_NAME);
            assert_eq!(items[2].attr("x"), Some("1"));
            let entities = items[3].attr("name").unwrap();
            assert!(entities.chars().all(|c| c == '&'), "cut between entities");
        }
    }
}
