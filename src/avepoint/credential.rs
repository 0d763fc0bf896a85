//! How the app registration authenticates at the token endpoint: a client
//! secret, or a certificate that signs a JWT client assertion.

use secrecy::SecretString;

use super::certificate::ClientCertificate;

/// How the app registration authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientCredential {
    /// `client_secret`.
    Secret(SecretString),
    /// `client_assertion`: a JWT signed with the certificate's private key.
    Certificate(ClientCertificate),
}

impl ClientCredential {
    /// `client_secret` or `certificate`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "client_secret",
            ClientCredential::Certificate(_) => "certificate",
        }
    }

    /// The config keys to check when the token endpoint says no.
    pub(super) fn what_to_check(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "the client secret",
            ClientCredential::Certificate(_) => {
                "that the certificate in avepoint.client_certificate_file is uploaded to the app registration"
            }
        }
    }
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret([REDACTED])"),
            ClientCredential::Certificate(certificate) => {
                f.debug_tuple("Certificate").field(certificate).finish()
            }
        }
    }
}
