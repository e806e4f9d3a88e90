//! [`Authenticated`]: a [`Handler`] that lets a HELLO through only with a
//! valid token (see [`crate::auth`]), and passes everything else on.

use super::handler::{ConnInfo, Context, Handler, Verdict};
use crate::auth::{AuthError, Verifier};
use crate::protocol::CloseReason;

/// Wraps a handler: `HELLO <id> <token>` is accepted only when the token is
/// valid for the id at the turn's wall-clock time; anything else closes the
/// connection with `BYE unauthorized` and leaves the id's holder online.
/// An accepted HELLO is then put to the inner handler's own
/// [`Handler::on_hello_request`].
///
/// ```
/// use vigil::auth::Verifier;
/// use vigil::server::{Authenticated, PresenceOnly, Server};
///
/// let verifier = Verifier::new(b"a secret of sixteen bytes or more").unwrap();
/// let server = Server::builder()
///     .listen("127.0.0.1:0")
///     .handler(Authenticated::new(verifier, PresenceOnly))
///     .build();
/// assert!(server.is_ok());
/// ```
#[derive(Debug)]
pub struct Authenticated<H> {
    verifier: Verifier,
    inner: H,
}

impl<H> Authenticated<H> {
    /// `inner`, behind a token check with `verifier`.
    pub fn new(verifier: Verifier, inner: H) -> Self {
        Authenticated { verifier, inner }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: Handler> Handler for Authenticated<H> {
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, message: &[u8]) {
        self.inner.on_message(ctx, conn, message)
    }

    fn on_online(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        self.inner.on_online(ctx, conn)
    }

    fn on_hello_request(
        &mut self,
        ctx: &mut Context<'_>,
        conn: &ConnInfo<'_>,
        client_id: &str,
        token: Option<&[u8]>,
    ) -> Verdict {
        let checked = token
            .ok_or(AuthError::Missing)
            .and_then(|t| self.verifier.check(client_id, t, ctx.unix_time()));
        if let Err(e) = checked {
            // Debug, not info: a flood of bad HELLOs must not flood the log.
            log::debug!(
                "conn {} from {}: HELLO {client_id}: {e}; closing with BYE unauthorized",
                conn.number,
                conn.peer
            );
            return Verdict::Refuse(CloseReason::Unauthorized);
        }
        self.inner.on_hello_request(ctx, conn, client_id, token)
    }

    fn on_hello(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>) {
        self.inner.on_hello(ctx, conn)
    }

    fn on_offline(&mut self, ctx: &mut Context<'_>, conn: &ConnInfo<'_>, reason: CloseReason) {
        self.inner.on_offline(ctx, conn, reason)
    }
}
