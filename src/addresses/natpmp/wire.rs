//! NAT-PMP's messages (RFC 6886): requests laid out byte for byte, and
//! every response from the gateway checked (length, version, opcode, result
//! code, ports) before it is believed.

use std::net::Ipv4Addr;

/// The UDP port NAT-PMP gateways listen on.
pub const GATEWAY_PORT: u16 = 5351;
/// The lifetime we ask for: two hours, as RFC 6886 recommends.
pub const REQUESTED_LIFETIME: u32 = 7200;
const VERSION: u8 = 0;
const OP_EXTERNAL_ADDRESS: u8 = 0;
const RESPONSE_BIT: u8 = 128;
const EXTERNAL_ADDRESS_RESPONSE_LEN: usize = 12;
const MAPPING_RESPONSE_LEN: usize = 16;

// ----- packets ---------------------------------------------------------------

/// The transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    fn opcode(self) -> u8 {
        match self {
            Protocol::Udp => 1,
            Protocol::Tcp => 2,
        }
    }
}

/// The request for the gateway's external IPv4 address.
pub fn external_address_request() -> [u8; 2] {
    [VERSION, OP_EXTERNAL_ADDRESS]
}

/// A request to map (or, with `lifetime` 0, delete the mapping of)
/// `internal_port`. `suggested_external_port` 0 lets the gateway choose.
pub fn mapping_request(
    protocol: Protocol,
    internal_port: u16,
    suggested_external_port: u16,
    lifetime: u32,
) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0] = VERSION;
    p[1] = protocol.opcode();
    // p[2..4]: reserved, zero.
    p[4..6].copy_from_slice(&internal_port.to_be_bytes());
    p[6..8].copy_from_slice(&suggested_external_port.to_be_bytes());
    p[8..12].copy_from_slice(&lifetime.to_be_bytes());
    p
}

/// A non-zero result code of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCode(pub u16);

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.0 {
            1 => "unsupported version (the gateway may speak only PCP)",
            2 => "not authorized or refused (NAT-PMP may be turned off on the router)",
            3 => "network failure (the gateway has no external address yet)",
            4 => "out of resources (no more mappings available)",
            5 => "unsupported opcode",
            _ => "unknown result code",
        };
        write!(f, "{what}, result code {}", self.0)
    }
}

/// Why a response is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response: {got} bytes, expected {expected}")]
    Length { got: usize, expected: usize },
    #[error("malformed response: version {0}, expected NAT-PMP's 0")]
    Version(u8),
    #[error("malformed response: opcode {got}, expected {expected}")]
    Opcode { got: u8, expected: u8 },
    #[error("the gateway refused: {0}")]
    Refused(ResultCode),
    #[error("malformed response: {0}")]
    Invalid(String),
}

/// The external-address response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalAddress {
    /// Seconds since the gateway's mapping table was (re)initialised.
    pub epoch: u32,
    pub ip: Ipv4Addr,
}

/// A mapping response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingResponse {
    pub epoch: u32,
    pub internal_port: u16,
    pub external_port: u16,
    /// Seconds the mapping lasts; 0 when it was deleted.
    pub lifetime: u32,
}

/// Checks version, opcode and result code; returns the epoch. A success
/// must be exactly `success_len` bytes. An error response only needs its
/// result code: RFC 6886 lets it be the 8-byte header or the echoed
/// request, so any length from 4 up to `success_len` is accepted.
fn header(buf: &[u8], request_opcode: u8, success_len: usize) -> Result<u32, ResponseError> {
    if buf.len() < 4 || buf.len() > success_len {
        return Err(ResponseError::Length {
            got: buf.len(),
            expected: success_len,
        });
    }
    if buf[0] != VERSION {
        return Err(ResponseError::Version(buf[0]));
    }
    let expected = RESPONSE_BIT | request_opcode;
    if buf[1] != expected {
        return Err(ResponseError::Opcode {
            got: buf[1],
            expected,
        });
    }
    let code = u16::from_be_bytes([buf[2], buf[3]]);
    if code != 0 {
        return Err(ResponseError::Refused(ResultCode(code)));
    }
    if buf.len() != success_len {
        return Err(ResponseError::Length {
            got: buf.len(),
            expected: success_len,
        });
    }
    Ok(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]))
}

/// Decodes the answer to [`external_address_request`].
pub fn decode_external_address(buf: &[u8]) -> Result<ExternalAddress, ResponseError> {
    let epoch = header(buf, OP_EXTERNAL_ADDRESS, EXTERNAL_ADDRESS_RESPONSE_LEN)?;
    let ip = Ipv4Addr::new(buf[8], buf[9], buf[10], buf[11]);
    if ip.is_unspecified() {
        // RFC 6886 wants result code 3 then; 0.0.0.0 is no address.
        return Err(ResponseError::Invalid(
            "external address 0.0.0.0 with a success code".into(),
        ));
    }
    Ok(ExternalAddress { epoch, ip })
}

/// Decodes the answer to [`mapping_request`] for `protocol`.
pub fn decode_mapping(buf: &[u8], protocol: Protocol) -> Result<MappingResponse, ResponseError> {
    let epoch = header(buf, protocol.opcode(), MAPPING_RESPONSE_LEN)?;
    let port = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    Ok(MappingResponse {
        epoch,
        internal_port: port(8),
        external_port: port(10),
        lifetime: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
    })
}

/// Checks that a mapping response answers our request for
/// `internal_port`: the same port, and for a new mapping (`deleting`
/// false) an external port and a lifetime.
pub fn check_mapping(
    response: MappingResponse,
    internal_port: u16,
    deleting: bool,
) -> Result<MappingResponse, ResponseError> {
    if response.internal_port != internal_port {
        return Err(ResponseError::Invalid(format!(
            "internal port {}, we asked about {internal_port}",
            response.internal_port
        )));
    }
    if !deleting && response.external_port == 0 {
        return Err(ResponseError::Invalid(
            "external port 0 for a mapping".into(),
        ));
    }
    if !deleting && response.lifetime == 0 {
        return Err(ResponseError::Invalid(
            "lifetime 0 for a new mapping".into(),
        ));
    }
    Ok(response)
}

// ----- the default gateway ------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rfc_6886_says() {
        assert_eq!(external_address_request(), [0, 0]);
        assert_eq!(
            mapping_request(Protocol::Tcp, 6881, 40000, 7200),
            [0, 2, 0, 0, 0x1a, 0xe1, 0x9c, 0x40, 0, 0, 0x1c, 0x20]
        );
        // Deleting: lifetime 0, no suggested port; UDP is opcode 1.
        assert_eq!(
            mapping_request(Protocol::Udp, 6881, 0, 0),
            [0, 1, 0, 0, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]
        );
    }

    fn mapping_response(opcode: u8, code: u16, internal: u16, external: u16, life: u32) -> Vec<u8> {
        let mut p = vec![0, opcode];
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.extend_from_slice(&internal.to_be_bytes());
        p.extend_from_slice(&external.to_be_bytes());
        p.extend_from_slice(&life.to_be_bytes());
        p
    }

    #[test]
    fn good_responses_decode() {
        let ext = [0, 128, 0, 0, 0, 0, 0, 9, 81, 2, 69, 160];
        assert_eq!(
            decode_external_address(&ext),
            Ok(ExternalAddress {
                epoch: 9,
                ip: Ipv4Addr::new(81, 2, 69, 160)
            })
        );
        let m =
            decode_mapping(&mapping_response(130, 0, 6881, 40000, 3600), Protocol::Tcp).unwrap();
        assert_eq!(
            m,
            MappingResponse {
                epoch: 1234,
                internal_port: 6881,
                external_port: 40000,
                lifetime: 3600
            }
        );
        assert_eq!(check_mapping(m, 6881, false), Ok(m));
        // A deletion answers external port 0 and lifetime 0.
        let deleted = decode_mapping(&mapping_response(130, 0, 6881, 0, 0), Protocol::Tcp).unwrap();
        assert!(check_mapping(deleted, 6881, true).is_ok());
    }

    #[test]
    fn malformed_responses_are_refused_with_the_reason() {
        let good = mapping_response(130, 0, 6881, 40000, 3600);
        let err = |buf: &[u8]| decode_mapping(buf, Protocol::Tcp).unwrap_err();

        assert_eq!(
            err(&good[..15]),
            ResponseError::Length {
                got: 15,
                expected: 16
            }
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            err(&long),
            ResponseError::Length {
                got: 17,
                expected: 16
            }
        );
        assert_eq!(
            err(&[]),
            ResponseError::Length {
                got: 0,
                expected: 16
            }
        );

        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(err(&version), ResponseError::Version(2));

        // The UDP answer to a TCP request, and a request echoed back.
        assert_eq!(
            err(&mapping_response(129, 0, 6881, 40000, 3600)),
            ResponseError::Opcode {
                got: 129,
                expected: 130
            }
        );
        assert_eq!(
            err(&mapping_request(Protocol::Tcp, 6881, 6881, 7200)),
            ResponseError::Opcode {
                got: 2,
                expected: 130
            }
        );

        // Error codes are refusals, short (8-byte) or full length.
        let refused = err(&mapping_response(130, 2, 6881, 0, 0));
        assert_eq!(refused, ResponseError::Refused(ResultCode(2)));
        assert!(refused.to_string().contains("not authorized"), "{refused}");
        assert_eq!(
            err(&mapping_response(130, 1, 0, 0, 0)[..8]),
            ResponseError::Refused(ResultCode(1))
        );
        assert!(ResultCode(77).to_string().contains("unknown result code"));

        // Decodes, but does not answer our request.
        let other_port =
            decode_mapping(&mapping_response(130, 0, 5000, 40000, 3600), Protocol::Tcp).unwrap();
        assert!(
            matches!(check_mapping(other_port, 6881, false), Err(ResponseError::Invalid(m)) if m.contains("5000"))
        );
        let no_port =
            decode_mapping(&mapping_response(130, 0, 6881, 0, 3600), Protocol::Tcp).unwrap();
        assert!(check_mapping(no_port, 6881, false).is_err());
        let no_life =
            decode_mapping(&mapping_response(130, 0, 6881, 40000, 0), Protocol::Tcp).unwrap();
        assert!(check_mapping(no_life, 6881, false).is_err());

        // External address: exact length, and never 0.0.0.0.
        assert_eq!(
            decode_external_address(&[0, 128, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0]),
            Err(ResponseError::Invalid(
                "external address 0.0.0.0 with a success code".into()
            ))
        );
        assert_eq!(
            decode_external_address(&[0, 128, 0, 3, 0, 0, 0, 9]),
            Err(ResponseError::Refused(ResultCode(3)))
        );
        assert_eq!(
            decode_external_address(&[0, 128, 0, 0, 0, 0, 0, 9]),
            Err(ResponseError::Length {
                got: 8,
                expected: 12
            })
        );
        assert_eq!(
            decode_external_address(&[0, 130, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4]),
            Err(ResponseError::Opcode {
                got: 130,
                expected: 128
            })
        );
    }
}
