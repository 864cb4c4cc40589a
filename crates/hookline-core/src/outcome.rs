//! What an attempt's result means: success, or which kind of failure.

/// Why no HTTP response arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// The connection was refused or could not be made.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Reading or writing failed mid-request (reset, closed early).
    Io,
    /// The destination is a refused address (loopback, private, link-local,
    /// …): no connection was made.
    Blocked,
}

impl TransportErrorKind {
    /// The lowercase name recorded with the attempt.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Io => "io",
            Self::Blocked => "blocked",
        }
    }
}

/// The classified result of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered {
        /// The status code.
        status: u16,
    },
    /// Any other answer (3xx included: redirects are not followed).
    Rejected {
        /// The status code.
        status: u16,
    },
    /// No answer within the request timeout.
    TimedOut,
    /// No answer for another reason.
    Transport {
        /// Which.
        kind: TransportErrorKind,
    },
}

/// Classifies an HTTP status: 2xx is success, everything else a failure.
pub fn classify_status(status: u16) -> AttemptOutcome {
    if (200..300).contains(&status) {
        AttemptOutcome::Delivered { status }
    } else {
        AttemptOutcome::Rejected { status }
    }
}

impl AttemptOutcome {
    /// True for a 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// The status code, when an answer arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status } | Self::Rejected { status } => Some(*status),
            Self::TimedOut | Self::Transport { .. } => None,
        }
    }

    /// `timeout`, `connect`, … when no answer arrived.
    pub fn error_kind(&self) -> Option<&'static str> {
        match self {
            Self::Delivered { .. } | Self::Rejected { .. } => None,
            Self::TimedOut => Some("timeout"),
            Self::Transport { kind } => Some(kind.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, success: bool) {
        assert_eq!(classify_status(status).is_success(), success, "{status}");
        assert_eq!(classify_status(status).status(), Some(status));
    }

    /// Only 2xx is success; redirects and errors are failures.
    #[test]
    fn classification() {
        for s in [200, 201, 202, 204, 299] {
            check(s, true);
        }
        for s in [100, 199, 300, 301, 302, 304, 400, 404, 410, 429, 500, 503] {
            check(s, false);
        }
        assert_eq!(AttemptOutcome::TimedOut.error_kind(), Some("timeout"));
        assert_eq!(AttemptOutcome::Transport { kind: TransportErrorKind::Connect }.error_kind(), Some("connect"));
        assert_eq!(AttemptOutcome::TimedOut.status(), None);
    }
}
