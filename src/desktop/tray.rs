//! What the tray shows, worked out from the backend's events: offline,
//! online or busy (transferring), and a one-line tooltip. The shell only
//! draws it.

use crate::events::{Event, TransferKind};

/// The tray icon's three looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Offline,
    Online,
    Busy,
}

/// The tray's state; feed it every event.
#[derive(Debug, Default)]
pub struct TrayStatus {
    online: Option<String>,
    offline_reason: Option<String>,
    downloading: usize,
    uploading: usize,
    shown: Option<(Look, String)>,
}

impl TrayStatus {
    /// The look and tooltip to show after `event`, when they changed.
    pub fn on_event(&mut self, event: &Event) -> Option<(Look, String)> {
        match event {
            Event::Connected { jid } => {
                self.online = Some(jid.clone());
                self.offline_reason = None;
            }
            Event::Disconnected { reason, .. } => {
                self.online = None;
                self.offline_reason = Some(reason.clone());
            }
            Event::Transfers { transfers } => {
                self.downloading = transfers
                    .iter()
                    .filter(|t| t.kind == TransferKind::Download && t.state.is_active_download())
                    .count();
                self.uploading = transfers.iter().filter(|t| t.up_bytes_per_sec > 0).count();
            }
            _ => return None,
        }
        let look = match (&self.online, self.downloading + self.uploading) {
            (None, _) => Look::Offline,
            (Some(_), 0) => Look::Online,
            _ => Look::Busy,
        };
        let tip = match &self.online {
            None => format!(
                "Bitween — offline{}",
                self.offline_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Some(jid) => format!(
                "Bitween — online as {jid} · {} downloading · {} uploading",
                self.downloading, self.uploading
            ),
        };
        let now = Some((look, tip));
        if self.shown == now {
            return None;
        }
        self.shown = now.clone();
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_and_tooltips_follow_the_events() {
        let mut t = TrayStatus::default();
        let (look, tip) = t
            .on_event(&Event::Disconnected {
                reason: "no network".into(),
                retrying: true,
                cause: Default::default(),
            })
            .unwrap();
        assert_eq!(look, Look::Offline);
        assert_eq!(tip, "Bitween — offline: no network");
        let (look, tip) = t
            .on_event(&Event::Connected {
                jid: "a@b/c".into(),
            })
            .unwrap();
        assert_eq!(look, Look::Online);
        assert!(tip.contains("online as a@b/c"), "{tip}");
        assert_eq!(
            t.on_event(&Event::Transfers { transfers: vec![] }),
            None,
            "no change"
        );
        assert_eq!(t.on_event(&Event::RosterChanged), None);
    }
}
