//! The bounded queue that carries frames to a detector.

use crate::base::Frame;
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// A bounded frame queue that drops the *oldest* frame when full: analysis wants the freshest picture.
#[derive(Clone)]
pub struct FrameQueue {
    tx: Sender<Frame>,
    rx: Receiver<Frame>,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Self { tx, rx }
    }

    /// Enqueue; returns how many frames were dropped to make room (0 or 1).
    pub fn push(&self, mut frame: Frame) -> u64 {
        let mut dropped = 0;
        loop {
            match self.tx.try_send(frame) {
                Ok(()) => return dropped,
                Err(TrySendError::Full(f)) => {
                    if self.rx.try_recv().is_ok() {
                        dropped += 1;
                    }
                    frame = f;
                }
                Err(TrySendError::Disconnected(_)) => return dropped + 1,
            }
        }
    }

    pub fn receiver(&self) -> &Receiver<Frame> {
        &self.rx
    }
}
