//! The case loop's rows: a disposed case claimed for its re-check, and re-checks that were refused or
//! went unanswered.

use super::{Db, ToVerify};
use std::time::Duration;

impl Db {
    /// The work-order system says case `case_id` was disposed (处置): it is re-checked next (also a case
    /// returned or left for a person before). `None` when no case has that id; `Some(false)` when it is
    /// closed or withdrawn (nothing to re-check).
    pub async fn disposed(&mut self, case_id: &str) -> anyhow::Result<Option<bool>> {
        let row = self
            .client
            .query_opt(
                "UPDATE bridge_cases SET state = CASE WHEN state IN ('filed', 'returned', 'manual') THEN 'disposed' ELSE state END,
                        disposed_at = CASE WHEN state IN ('filed', 'returned', 'manual') THEN now() ELSE disposed_at END
                  WHERE case_id = $1 RETURNING state",
                &[&case_id],
            )
            .await?;
        Ok(row.map(|r| {
            matches!(
                r.get::<_, String>(0).as_str(),
                "disposed" | "verifying" | "verified"
            )
        }))
    }

    /// The disposed cases whose re-check is to be asked of their pole.
    pub async fn to_verify(&self) -> anyhow::Result<Vec<ToVerify>> {
        let rows = self
            .client
            .query("SELECT seq, incident_id, device FROM bridge_cases WHERE state = 'disposed' ORDER BY seq LIMIT 64", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| ToVerify {
                seq: r.get(0),
                incident_id: r.get(1),
                device: r.get(2),
            })
            .collect())
    }

    /// Claim disposed case `seq` for re-check `request_id` (or, with `None`, give an unsent claim back);
    /// `false` when another replica claimed it first — only the claimant sends the command.
    pub async fn claim_verify(
        &mut self,
        seq: i64,
        request_id: Option<&str>,
    ) -> anyhow::Result<bool> {
        let n = match request_id {
            Some(rid) => {
                self.client
                    .execute(
                        "UPDATE bridge_cases SET state = 'verifying', verify_request = $2, verify_sent_at = now()
                          WHERE seq = $1 AND state = 'disposed'",
                        &[&seq, &rid],
                    )
                    .await?
            }
            None => {
                self.client
                    .execute(
                        "UPDATE bridge_cases SET state = 'disposed', verify_request = NULL
                          WHERE seq = $1 AND state = 'verifying'",
                        &[&seq],
                    )
                    .await?
            }
        };
        Ok(n == 1)
    }

    /// The pole refused re-check `request_id` (`error`), or cases asked more than `timeout` ago had no
    /// answer: their report says so and the case is left for a person. Returns how many.
    pub async fn unanswered(
        &mut self,
        refused: Option<(&str, &str)>,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        let n = match refused {
            Some((request_id, error)) => {
                let found =
                    serde_json::json!({ "result": "no_answer", "error": error, "evidence": [] });
                self.client
                    .execute(
                        "UPDATE bridge_cases SET state = 'verified', verification = $2, waiting_for = '[]', due_since = now()
                          WHERE verify_request = $1 AND state = 'verifying'",
                        &[&request_id, &found],
                    )
                    .await?
            }
            None => {
                let found = serde_json::json!({ "result": "no_answer", "error": "the pole did not answer", "evidence": [] });
                self.client
                    .execute(
                        "UPDATE bridge_cases SET state = 'verified', verification = $2, waiting_for = '[]', due_since = now()
                          WHERE state = 'verifying' AND verify_sent_at <= now() - make_interval(secs => $1)",
                        &[&timeout.as_secs_f64(), &found],
                    )
                    .await?
            }
        };
        Ok(n)
    }
}
