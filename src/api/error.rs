//! The one error of every operation, for every front end: a kind the UI can
//! act on, a message a person can read, and the JSON-RPC code the kind maps
//! to. The desktop app's commands, bitweend's JSON-RPC API and bitweenc all
//! carry this same value.

use serde::{Deserialize, Serialize};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The operation itself failed (a path that does not exist, ...).
pub const OPERATION_FAILED: i64 = -32000;
pub const UNAUTHORIZED: i64 = -32001;
pub const FORBIDDEN: i64 = -32002;

/// What went wrong, for a front end to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is not JSON.
    Parse,
    /// The request is not a JSON-RPC request.
    InvalidRequest,
    MethodNotFound,
    /// A parameter is missing or of the wrong form.
    InvalidParams,
    /// No or a wrong token.
    Unauthorized,
    /// A request from elsewhere than the API's own address or pages.
    Forbidden,
    /// The operation failed; the message says why.
    Failed,
    /// No account is logged in (desktop).
    NotLoggedIn,
    /// The account settings cannot be used (a malformed JID, ...).
    Config,
    /// The server refused the JID and password.
    Refused,
    /// The server could not be found or reached, or TLS failed.
    Unreachable,
    /// Logged in, but the server does not let us publish our list.
    NoPep,
    /// No system keyring to keep the password in.
    NoKeyring,
    /// The settings are invalid or cannot be saved.
    Settings,
    /// Refused in demo mode, or the demo failed.
    Demo,
}

impl ErrorKind {
    /// The JSON-RPC error code of this kind.
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::Parse => PARSE_ERROR,
            ErrorKind::InvalidRequest => INVALID_REQUEST,
            ErrorKind::MethodNotFound => METHOD_NOT_FOUND,
            ErrorKind::InvalidParams => INVALID_PARAMS,
            ErrorKind::Unauthorized => UNAUTHORIZED,
            ErrorKind::Forbidden => FORBIDDEN,
            _ => OPERATION_FAILED,
        }
    }
}

/// A failed operation: `{code, kind, message}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: i64,
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            code: kind.code(),
            kind,
            message: message.into(),
        }
    }

    pub fn params(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::InvalidParams, message)
    }

    pub fn failed(e: impl std::fmt::Display) -> ApiError {
        Self::new(ErrorKind::Failed, e.to_string())
    }
}
