//! Fault injection: the state of pending faults and `Core::inject`.

use std::time::Duration;

use crate::error::{ApiError, Error};
use crate::model::Fault;
use crate::state::{Core, WsOut};

/// A pending "fail the next N calls" fault.
#[derive(Clone, Debug)]
pub struct FailCalls {
    pub endpoint: String,
    pub remaining: u32,
    pub status: u16,
    pub code: i64,
    pub msg: String,
}

/// A pending handshake refusal.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub remaining: u32,
    pub status: u16,
    pub autherrcode: Option<i64>,
    pub msg: String,
}

/// All pending faults.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub duplicate_events: u32,
    pub drop_acks: u32,
    pub fail_calls: Vec<FailCalls>,
    pub refuse_handshakes: Option<Refusal>,
    pub discovery_code: Option<(u32, i64, String)>,
    pub registration_poll: Option<(u32, String)>,
}

impl Faults {
    /// Consumes a "fail call" matching `route` (`METHOD /route/{x}`) or the
    /// actual `METHOD /path`.
    pub fn take_call_failure(&mut self, route: &str, actual: &str) -> Option<ApiError> {
        let idx = self
            .fail_calls
            .iter()
            .position(|f| f.endpoint == route || actual.starts_with(&f.endpoint))?;
        let f = &mut self.fail_calls[idx];
        let err = ApiError::with_status(f.status, f.code, f.msg.clone());
        f.remaining -= 1;
        if f.remaining == 0 {
            self.fail_calls.remove(idx);
        }
        Some(err)
    }

    /// Consumes one handshake refusal.
    pub fn take_refusal(&mut self) -> Option<Refusal> {
        let r = self.refuse_handshakes.as_mut()?;
        let out = r.clone();
        r.remaining -= 1;
        if r.remaining == 0 {
            self.refuse_handshakes = None;
        }
        Some(out)
    }

    /// Consumes one discovery code override.
    pub fn take_discovery(&mut self) -> Option<(i64, String)> {
        let (n, code, msg) = self.discovery_code.as_mut()?;
        let out = (*code, msg.clone());
        *n -= 1;
        if *n == 0 {
            self.discovery_code = None;
        }
        Some(out)
    }

    /// Consumes one registration poll error.
    pub fn take_registration(&mut self) -> Option<String> {
        let (n, err) = self.registration_poll.as_mut()?;
        let out = err.clone();
        *n -= 1;
        if *n == 0 {
            self.registration_poll = None;
        }
        Some(out)
    }
}

fn nonzero(count: u32) -> Result<u32, Error> {
    if count == 0 {
        Err(Error::Invalid("count must be at least 1".into()))
    } else {
        Ok(count)
    }
}

impl Core {
    /// Applies a fault.
    pub fn inject(&self, fault: Fault) -> Result<(), Error> {
        let mut st = self.lock();
        match fault {
            Fault::DropConnections { app_id } => {
                let ids: Vec<u64> = st
                    .conns
                    .iter()
                    .filter(|(_, c)| app_id.as_deref().is_none_or(|a| a == c.app_id))
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    if let Some(conn) = st.conns.get(&id) {
                        let _ = conn.tx.send(WsOut::Close);
                    }
                    st.remove_conn(id);
                }
            }
            Fault::DuplicateEvents { count } => st.faults.duplicate_events += nonzero(count)?,
            Fault::DropAcks { count } => st.faults.drop_acks += nonzero(count)?,
            Fault::SetRedeliveryAfter { ms } => {
                st.redelivery_after = Duration::from_millis(ms.max(1));
            }
            Fault::FailCalls {
                endpoint,
                count,
                status,
                code,
                msg,
            } => st.faults.fail_calls.push(FailCalls {
                endpoint,
                remaining: nonzero(count)?,
                status,
                code,
                msg: msg.unwrap_or_else(|| "injected failure".to_string()),
            }),
            Fault::ExpireTokens => {
                st.tokens.clear();
                for app in st.apps.values_mut() {
                    app.current_token = None;
                }
            }
            Fault::RefuseHandshakes {
                count,
                status,
                autherrcode,
                msg,
            } => {
                st.faults.refuse_handshakes = Some(Refusal {
                    remaining: nonzero(count)?,
                    status,
                    autherrcode,
                    msg: msg.unwrap_or_else(|| "handshake refused".to_string()),
                })
            }
            Fault::DiscoveryCode { count, code, msg } => {
                st.faults.discovery_code = Some((
                    nonzero(count)?,
                    code,
                    msg.unwrap_or_else(|| "injected".to_string()),
                ))
            }
            Fault::RegistrationPoll { error, count } => {
                st.faults.registration_poll = Some((nonzero(count)?, error))
            }
            Fault::Clear => {
                st.faults = Faults::default();
                st.redelivery_after = self.cfg.redelivery_after;
            }
        }
        Ok(())
    }
}
