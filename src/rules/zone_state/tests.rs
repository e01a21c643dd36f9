//! The zone-state rule with a synthetic embedder (a crop's mean colour): states, K of N, passers-by,
//! feedback, leave-one-out.

use super::*;
use crate::base::Embed;
use std::sync::{Arc, Mutex};

/// The crop's mean red, green and blue: enough to tell a grey pavement from a yellow tarp.
struct MeanColour;

impl Embed for MeanColour {
    fn embed(&mut self, picture: &ImageView) -> Result<Vec<f32>, String> {
        let mut sum = [0f32; 3];
        for y in 0..picture.height() {
            for px in picture.row(y).chunks_exact(3) {
                (0..3).for_each(|c| sum[c] += px[c] as f32);
            }
        }
        Ok(sum.to_vec())
    }
    fn id(&self) -> String {
        "mean-colour".into()
    }
}

const W: usize = 40;
const H: usize = 30;
const GREY: [u8; 3] = [120, 120, 120];
const YELLOW: [u8; 3] = [220, 210, 40];

/// A grey frame with the zone's middle (the whole right half) painted `colour`.
fn frame(colour: [u8; 3]) -> Vec<u8> {
    let mut data = Vec::with_capacity(W * H * 3);
    for _ in 0..H {
        for x in 0..W {
            data.extend_from_slice(if x >= W / 2 { &colour } else { &GREY });
        }
    }
    data
}

fn rule() -> ZoneStateRule {
    let mut r = ZoneStateRule::new(
        ZoneStateParams {
            states: vec!["clear".into(), "tarp".into()],
            alarm: vec![false, true],
            sample_every: Duration::from_secs(1),
            window: 5,
            min_present: 3,
            margin: 0.0,
            exclude: vec![0],
            max_occluded: 0.05,
        },
        Polygon::new(&[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]),
    );
    r.attach(Arc::new(Mutex::new(MeanColour)));
    r
}

fn example(r: &ZoneStateRule, id: &str, state: usize, colour: [u8; 3]) -> Example {
    let data = frame(colour);
    let img = ImageView::packed(W, H, &data).unwrap();
    Example {
        id: id.into(),
        state,
        vector: r.embed(&img, &[]).unwrap(),
    }
}

/// Feed one sample a second of `colour` (with `people` in front); the verdict after each.
fn feed(
    r: &mut ZoneStateRule,
    t0: Instant,
    from: u64,
    colours: &[[u8; 3]],
    people: &[Detection],
) -> Vec<Verdict> {
    colours
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let data = frame(*c);
            let sample = Sample {
                now: t0 + Duration::from_secs(from + i as u64),
                detections: people,
                tracks: &[],
                image: &|| ImageView::packed(W, H, &data).unwrap(),
                density: None,
            };
            r.evaluate(&sample)
        })
        .collect()
}

#[test]
fn a_rule_without_an_example_of_every_state_judges_nothing_and_says_why() {
    let mut r = rule();
    let e = example(&r, "c1", 0, GREY);
    r.set_examples(vec![e]);
    let v = feed(&mut r, Instant::now(), 0, &[YELLOW; 5], &[]);
    assert!(v.iter().all(|v| !v.holds && v.state.is_none()));
    assert!(r.problem.as_deref().unwrap().contains("[tarp]"));
}

#[test]
fn the_alarm_state_holds_after_k_of_n_samples_and_clears_after_k_without() {
    let mut r = rule();
    let examples = vec![example(&r, "c1", 0, GREY), example(&r, "t1", 1, YELLOW)];
    r.set_examples(examples);
    let t0 = Instant::now();
    let v = feed(&mut r, t0, 0, &[YELLOW, YELLOW, GREY, YELLOW, YELLOW], &[]);
    let holds: Vec<bool> = v.iter().map(|v| v.holds).collect();
    assert_eq!(holds, [false, false, false, true, true]);
    let last = v[4].state.clone().unwrap();
    assert_eq!((last.state.as_str(), last.nearest.as_str()), ("tarp", "t1"));
    assert!(last.confidence > 0.99, "{last:?}");
    assert_eq!(v[4].hits[0].score, last.confidence, "the event carries it");
    assert_eq!(
        v[4].since,
        Some(t0),
        "first sample of the window that saw it"
    );
    let v = feed(&mut r, t0, 5, &[GREY, GREY, GREY], &[]);
    assert_eq!(
        v.iter().map(|v| v.holds).collect::<Vec<_>>(),
        [true, false, false]
    );
}

#[test]
fn people_over_the_crop_skip_the_sample_instead_of_counting_it() {
    let mut r = rule();
    let examples = vec![example(&r, "c", 0, GREY), example(&r, "t", 1, YELLOW)];
    r.set_examples(examples);
    let person = Detection {
        class: 0,
        score: 0.9,
        bbox: BBox {
            x1: 0.6,
            y1: 0.2,
            x2: 0.8,
            y2: 0.9,
        },
    };
    let v = feed(
        &mut r,
        Instant::now(),
        0,
        &[YELLOW; 6],
        std::slice::from_ref(&person),
    );
    assert!(v.iter().all(|v| !v.holds && v.state.is_none()));
    let beside = Detection {
        bbox: BBox {
            x1: 0.1,
            y1: 0.2,
            x2: 0.3,
            y2: 0.9,
        },
        ..person
    };
    let v = feed(&mut r, Instant::now(), 10, &[YELLOW; 3], &[beside]);
    assert!(v[2].holds, "a person outside the crop does not matter");
}

#[test]
fn a_picture_labelled_normal_becomes_its_own_nearest_example() {
    let mut r = rule();
    let orange = [230, 140, 40];
    let mut examples = vec![example(&r, "c", 0, GREY), example(&r, "t", 1, YELLOW)];
    r.set_examples(examples.clone());
    let v = r
        .embed(&ImageView::packed(W, H, &frame(orange)).unwrap(), &[])
        .unwrap();
    assert_eq!(r.classify(&v).unwrap().state, "tarp", "a false positive");
    examples.push(example(&r, "fp", 0, orange));
    r.set_examples(examples);
    let reading = r.classify(&v).unwrap();
    assert_eq!(
        (reading.state.as_str(), reading.nearest.as_str()),
        ("clear", "fp")
    );
    assert_eq!(r.normal_state(), Some("clear"));
}

#[test]
fn leave_one_out_judges_each_example_by_the_others() {
    let mut r = rule();
    let examples = vec![
        example(&r, "c1", 0, GREY),
        example(&r, "c2", 0, [125, 118, 121]),
        example(&r, "t1", 1, YELLOW),
        example(&r, "t2", 1, [210, 200, 60]),
        example(&r, "odd", 1, [118, 121, 119]),
    ];
    r.set_examples(examples);
    let judged = r.leave_one_out();
    assert_eq!(
        judged,
        [
            (0, Some(1)),
            (0, Some(0)),
            (1, Some(1)),
            (1, Some(1)),
            (1, Some(0))
        ],
        "a grey picture labelled tarp is voted clear by the rest — and, nearer to c1 than c2 is, \
         makes c1 look like a tarp: what leave-one-out is for"
    );
}

#[test]
fn the_samples_judged_an_alarm_are_kept_as_judged_until_taken() {
    let mut r = rule();
    r.set_examples(vec![example(&r, "c", 0, GREY), example(&r, "t", 1, YELLOW)]);
    let t0 = Instant::now();
    let orange = [230, 140, 40];
    feed(&mut r, t0, 0, &[GREY, orange, GREY, YELLOW], &[]);
    let taken = r.take_alarms();
    assert_eq!(taken.len(), 2, "only the samples voted an alarm");
    let first = &taken[0];
    assert_eq!((first.picture.width, first.picture.height), (W / 2, H));
    assert!(
        first.picture.rgb.chunks_exact(3).all(|p| p == orange),
        "the crop as judged"
    );
    let again = r
        .embed(&ImageView::packed(W, H, &frame(orange)).unwrap(), &[])
        .unwrap();
    assert_eq!(first.vector, again, "its vector is the judged one");
    assert!(r.take_alarms().is_empty(), "handed over once");
    // No more than the window's worth is kept; a reset forgets them.
    feed(&mut r, t0, 10, &[YELLOW; 8], &[]);
    assert_eq!(r.take_alarms().len(), 5);
    feed(&mut r, t0, 20, &[YELLOW; 2], &[]);
    r.reset();
    assert!(r.take_alarms().is_empty());
}
