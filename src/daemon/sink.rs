//! Where publications go: the outbox first (an event is committed before anything else is done with it),
//! then the local evidence archive — with the disk's reserve deciding what gives way. Events have priority
//! over every image: undelivered evidence that would eat into the reserve first takes space from the
//! archive's oldest copies, and is left out (counted) if that is not enough; an event that still cannot be
//! written gives up kept copies and the ballast and is stored again without its images.

use crate::base::DiskGuard;
use crate::config::Config;
use crate::incident::{EvidenceArchive, Publication};
use crate::uplink::OutboxWriter;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The outbox, the archive and the disk they share.
#[derive(Clone)]
pub(super) struct Sink {
    pub(super) outbox: OutboxWriter,
    archive: Option<Arc<Mutex<EvidenceArchive>>>,
    pub(super) disk: Arc<DiskGuard>,
    /// The latest events, for the installer's console.
    pub(super) live: crate::incident::LiveBoard,
}

impl Sink {
    pub(super) fn new(config: &Config, outbox: OutboxWriter, disk: Arc<DiskGuard>) -> Self {
        let s = &config.storage;
        let archive = match EvidenceArchive::open(
            &s.state_dir.get_ref().join("evidence"),
            s.evidence_max_mb.get_ref() * 1024 * 1024,
            Duration::from_secs(s.evidence_max_age_h.get_ref() * 3600),
        ) {
            Ok(a) => Some(Arc::new(Mutex::new(a.guarded(disk.clone())))),
            Err(error) => {
                tracing::error!(%error, "Evidence archive unavailable; evidence is only sent, not kept on the gateway.");
                None
            }
        };
        Sink {
            outbox,
            archive,
            disk,
            live: Default::default(),
        }
    }

    /// Remove the archive's oldest copies until about `bytes` are freed.
    fn free_archive(&self, bytes: u64) -> u64 {
        self.archive
            .as_ref()
            .map_or(0, |a| a.lock().expect("archive lock").free_up(bytes))
    }

    /// Durably enqueue a publication and keep its evidence on the gateway.
    pub(super) fn store(&self, p: &Publication) {
        let e = &p.event;
        let images = p.evidence.len() as u64;
        let bytes: u64 = p.evidence.iter().map(|i| i.jpeg.len() as u64).sum();
        let reserve = self.disk.reserve();
        let bare;
        let mut p = p;
        if images > 0 && !self.disk.fits(bytes, 1) {
            self.free_archive(bytes + reserve);
            if !self.disk.fits(bytes, 1) {
                tracing::warn!(event = %e.event_id, images, free = self.disk.free(), reserve, "Disk short: the event is stored without its evidence images.");
                self.disk.count_dropped(images);
                bare = p.without_evidence();
                p = &bare;
            }
        }
        // Committed to disk before this returns: from here on the event survives a power cut.
        let alone;
        let p = match self.outbox.append(p) {
            Ok(()) => p,
            Err(error) => {
                // The disk filled up all the same (something else wrote to it): give up kept copies and
                // the ballast, and store the event alone.
                tracing::warn!(event = %e.event_id, %error, "Event could not be stored; freeing space and trying again.");
                self.free_archive(4 * reserve);
                self.disk.release_ballast();
                self.disk.count_dropped(p.evidence.len() as u64);
                alone = p.without_evidence();
                if let Err(error) = self.outbox.append(&alone) {
                    tracing::error!(camera = %e.camera.id, event = %e.event_id, %error, "Incident event could not be stored; it is lost.");
                    return;
                }
                &alone
            }
        };
        tracing::info!(camera = %e.camera.id, zone = %e.zone.id, phase = ?e.phase, incident = %e.incident_id, event = %e.event_id, "Incident event stored.");
        self.live.record(&p.event);
        if let Some(archive) = &self.archive {
            let mut archive = archive.lock().expect("archive lock");
            for (r, img) in p.event.evidence.iter().zip(&p.evidence) {
                if let Err(error) = archive.store(&r.topic, &img.jpeg, SystemTime::now()) {
                    tracing::warn!(event = %e.event_id, %error, "Evidence could not be kept on the gateway.");
                }
            }
        }
    }
}
