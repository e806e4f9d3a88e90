//! [`AnyProtocol`]: every built-in protocol behind one type, so one server
//! can speak a different one on each listener (`vigil serve --listen
//! resp://... --listen ws://...`).

use super::{
    BinaryProtocol, DecodeError, Frame, LineProtocol, Protocol, RawProtocol, Reply, RespProtocol,
    Resume,
};
use crate::server::Scheme;

/// One of the built-in protocols, chosen by [`Scheme`], each with its
/// limits. It decodes and encodes as the chosen one does;
/// [`for_scheme`](Protocol::for_scheme) gives the codec of another scheme
/// with the same limits.
///
/// ```
/// use vigil::protocol::{AnyProtocol, LineProtocol, Protocol};
/// use vigil::server::Scheme;
///
/// let any = AnyProtocol::new(Scheme::Line, LineProtocol::default(), Default::default(),
///     Default::default(), Default::default());
/// assert_eq!(any.name(), "line");
/// assert_eq!(any.for_scheme(Scheme::Resp).map(|p| p.name()), Some("resp"));
/// assert_eq!(any.for_scheme(Scheme::Ws).map(|p| p.name()), Some("line"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnyProtocol {
    scheme: Scheme,
    line: LineProtocol,
    resp: RespProtocol,
    binary: BinaryProtocol,
    raw: RawProtocol,
}

impl AnyProtocol {
    /// Speaks `scheme`'s protocol (WebSocket's is the line protocol); the
    /// others are kept for [`for_scheme`](Protocol::for_scheme).
    pub fn new(
        scheme: Scheme,
        line: LineProtocol,
        resp: RespProtocol,
        binary: BinaryProtocol,
        raw: RawProtocol,
    ) -> AnyProtocol {
        AnyProtocol {
            scheme,
            line,
            resp,
            binary,
            raw,
        }
    }

    /// The protocol chosen.
    fn chosen(&self) -> &dyn Protocol {
        match self.scheme {
            Scheme::Resp => &self.resp,
            Scheme::Binary => &self.binary,
            Scheme::Raw => &self.raw,
            _ => &self.line,
        }
    }
}

impl Protocol for AnyProtocol {
    fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        match self.scheme {
            Scheme::Resp => self.resp.decode(input),
            Scheme::Binary => self.binary.decode(input),
            Scheme::Raw => self.raw.decode(input),
            _ => self.line.decode(input),
        }
    }

    fn decode_resume<'a>(
        &self,
        input: &'a [u8],
        resume: &mut Resume,
    ) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        match self.scheme {
            Scheme::Resp => self.resp.decode_resume(input, resume),
            Scheme::Binary => self.binary.decode_resume(input, resume),
            Scheme::Raw => self.raw.decode_resume(input, resume),
            _ => self.line.decode_resume(input, resume),
        }
    }

    fn encode(&self, reply: &Reply<'_>, out: &mut Vec<u8>) {
        match self.scheme {
            Scheme::Resp => self.resp.encode(reply, out),
            Scheme::Binary => self.binary.encode(reply, out),
            Scheme::Raw => self.raw.encode(reply, out),
            _ => self.line.encode(reply, out),
        }
    }

    fn max_frame(&self) -> usize {
        self.chosen().max_frame()
    }

    fn name(&self) -> &'static str {
        self.chosen().name()
    }

    fn max_pongs_per_interval(&self) -> Option<u32> {
        self.chosen().max_pongs_per_interval()
    }

    fn welcome_every_hello(&self) -> bool {
        self.chosen().welcome_every_hello()
    }

    fn can_ping(&self) -> bool {
        self.chosen().can_ping()
    }

    fn for_scheme(&self, scheme: Scheme) -> Option<Self> {
        Some(AnyProtocol {
            scheme,
            ..self.clone()
        })
    }
}
