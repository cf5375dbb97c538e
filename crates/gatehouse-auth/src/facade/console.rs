//! Operators signing in to the console through the façade's identity provider:
//! authorization code with PKCE, the provider's token verified like any caller's, and the
//! login bound to the browser that started it (the console's digest of a cookie nonce
//! travels with the pending login, so a login someone else started cannot land in another
//! browser).

use std::sync::Arc;

use gatehouse_store::PendingLogin;

use super::{AuthorizationServer, FacadeEvent, Params, Step, digest, random_token};
use crate::issuer::Authenticator;
use crate::wire::now;

/// Marks a pending login as a console sign-in; the rest is the browser binding's digest.
const CONSOLE: &str = "console:";

impl AuthorizationServer {
    /// Starts a console sign-in bound to `binding` (the console's digest of a random value
    /// it keeps in a short-lived cookie): where to send the browser at the provider.
    pub async fn console_login(&self, binding: &str) -> Result<String, String> {
        let state = random_token();
        let verifier = random_token();
        let login = PendingLogin {
            client_id: String::new(),
            redirect_uri: String::new(),
            code_challenge: String::new(),
            client_state: None,
            scope: String::new(),
            resource: String::new(),
            idp_verifier: verifier.clone(),
            connect: Some(format!("{CONSOLE}{binding}")),
            created_at: now(),
        };
        self.store
            .put_login(&digest(&state), &login)
            .map_err(|e| format!("oauth store: {e}"))?;
        self.provider_redirect(&state, &verifier).await
    }

    /// The provider's redirect back for a console sign-in: the code exchanged, the token
    /// verified through `authn`, the principal handed to the console with its binding.
    pub(crate) async fn console_signed_in(
        &self,
        q: &Params,
        login: PendingLogin,
        authn: &Authenticator,
    ) -> (Step, FacadeEvent) {
        let mut event = FacadeEvent {
            what: "auth.console_login_failed",
            principal: String::new(),
            tenant: None,
            client_id: "console".into(),
            ok: false,
            detail: String::new(),
        };
        let binding = login
            .connect
            .as_deref()
            .and_then(|c| c.strip_prefix(CONSOLE))
            .unwrap_or_default()
            .to_owned();
        let fail = |mut event: FacadeEvent, status: u16, text: &str, detail: String| {
            event.detail = detail;
            (Step::Page(status, text.to_owned()), event)
        };
        if q.contains_key("error") {
            return fail(
                event,
                403,
                "The sign-in was refused.",
                "the identity provider refused".into(),
            );
        }
        let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
            return fail(
                event,
                400,
                "No code from the identity provider.",
                "no code".into(),
            );
        };
        let token = match self.exchange(code, &login.idp_verifier).await {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    event,
                    503,
                    "The identity provider did not complete the sign-in.",
                    e,
                );
            }
        };
        match authn.authenticate(&token).await {
            Ok(p) => {
                event.what = "auth.console_login";
                event.ok = true;
                event.principal = p.id.clone();
                event.tenant = p.tenant.clone();
                (
                    Step::Console {
                        principal: Arc::new(p),
                        binding,
                    },
                    event,
                )
            }
            Err(e) => {
                event.detail = format!("token refused: {}", e.label());
                (Step::Page(403, "Your sign-in was refused.".into()), event)
            }
        }
    }
}

/// Whether a pending login is a console sign-in.
pub(crate) fn is_console(login: &PendingLogin) -> bool {
    login
        .connect
        .as_deref()
        .is_some_and(|c| c.starts_with(CONSOLE))
}
