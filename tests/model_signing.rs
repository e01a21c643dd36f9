//! Signed bundles through the real binary: an engineer makes a key pair and signs a copy of the shipped
//! NanoDet; a pole that trusts the key loads it, and refuses — naming key and file — a bundle changed after
//! signing, one signed by a key it does not trust, and (with `require_signature`) an unsigned one. A
//! configuration that requires signatures but trusts no key, or names a key that is not one, is refused at
//! its line.

mod support;

use std::path::{Path, PathBuf};
use support::*;

const PASSWORD: &str = "correct horse battery staple";

fn run(args: &[&str]) -> (i32, String) {
    let out = streetsight_bin()
        .args(args)
        .env("STREETSIGHT_KEY_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn copy_bundle(to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for f in ["manifest.toml", "model.onnx"] {
        std::fs::copy(model_dir().join(f), to.join(f)).unwrap();
    }
    to.to_path_buf()
}

fn keygen(prefix: &Path) -> (String, String) {
    let (code, out) = run(&["models", "keygen", prefix.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let public = prefix.with_extension("pub");
    let text = std::fs::read_to_string(&public).unwrap();
    let id = text
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    (public.display().to_string(), id)
}

/// `check --offline` on a pole whose model is `bundle`, with `trust` as its [model_trust] section.
fn pole_check(dir: &Path, bundle: &Path, trust: &str) -> (i32, String) {
    let config = dir.join("pole.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"pole-1\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1883\"\n{trust}\n[models.nanodet]\npath = \"{}\"\n[[camera]]\nid = \"gate\"\nurl = \"rtsp://10.0.0.5/live\"\nmodel = \"nanodet\"\n",
            bundle.display()
        ),
    )
    .unwrap();
    run(&["check", "--offline", "--config", config.to_str().unwrap()])
}

#[test]
fn a_signed_bundle_is_trusted_and_a_changed_foreign_or_unsigned_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (city_pub, city_id) = keygen(&dir.path().join("city-models"));
    let (other_pub, other_id) = keygen(&dir.path().join("someone-else"));
    assert_ne!(city_id, other_id);
    // The secret key is encrypted and private to its owner.
    let secret = std::fs::read_to_string(dir.path().join("city-models.key")).unwrap();
    assert!(secret.contains("streetsight model signing secret key"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("city-models.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (code, out) = run(&[
        "models",
        "keygen",
        dir.path().join("city-models").to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "an existing key is never overwritten: {out}");

    let signed = copy_bundle(&dir.path().join("signed"));
    let key = dir.path().join("city-models.key");
    let (code, out) = run(&[
        "models",
        "sign",
        signed.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&city_id), "{out}");
    let sig = std::fs::read_to_string(signed.join("manifest.toml.minisig")).unwrap();
    assert!(
        sig.contains("trusted comment: streetsight bundle nanodet-g-416 1.0.0 sha256:2c5104f7"),
        "{sig}"
    );

    // The engineer's check.
    let (code, out) = run(&[
        "models",
        "verify",
        signed.to_str().unwrap(),
        "--key",
        &city_pub,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("signed by trusted key {city_id}")),
        "{out}"
    );

    // The pole trusts the city's key and requires signatures: the signed bundle loads.
    let trust = format!("[model_trust]\nkeys = [\"{city_pub}\"]\nrequire_signature = true\n");
    let (code, out) = pole_check(dir.path(), &signed, &trust);
    assert_eq!(code, 0, "{out}");

    // Wrong password: nothing is signed.
    let again = copy_bundle(&dir.path().join("again"));
    let out = streetsight_bin()
        .args([
            "models",
            "sign",
            again.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
        .env("STREETSIGHT_KEY_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Wrong password"),
        "{out:?}"
    );
    assert!(!again.join("manifest.toml.minisig").exists());

    // Changed after signing (a lower threshold slipped in): refused, naming the key and the files.
    let changed = copy_bundle(&dir.path().join("changed"));
    std::fs::copy(
        signed.join("manifest.toml.minisig"),
        changed.join("manifest.toml.minisig"),
    )
    .unwrap();
    let m = std::fs::read_to_string(changed.join("manifest.toml")).unwrap();
    std::fs::write(
        changed.join("manifest.toml"),
        m.replace("score_threshold = 0.35", "score_threshold = 0.2"),
    )
    .unwrap();
    let (code, out) = pole_check(dir.path(), &changed, &trust);
    assert_ne!(code, 0);
    assert!(
        out.contains("does not verify")
            && out.contains(&city_id)
            && out.contains("changed/manifest.toml"),
        "{out}"
    );
    let (code, out) = run(&[
        "models",
        "verify",
        changed.to_str().unwrap(),
        "--key",
        &city_pub,
    ]);
    assert_ne!(code, 0, "{out}");

    // Signed by a key the pole does not trust.
    let foreign = copy_bundle(&dir.path().join("foreign"));
    let (code, out) = run(&[
        "models",
        "sign",
        foreign.to_str().unwrap(),
        "--key",
        dir.path().join("someone-else.key").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = pole_check(dir.path(), &foreign, &trust);
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!(
            "signed by key {other_id}, which this pole does not trust"
        )) && out.contains(&city_id),
        "{out}"
    );
    // A pole that trusts both keys takes it.
    let both = format!("[model_trust]\nkeys = [\"{city_pub}\", \"{other_pub}\"]\n");
    assert_eq!(pole_check(dir.path(), &foreign, &both).0, 0);

    // Unsigned: refused when signatures are required, loaded when not.
    let unsigned = copy_bundle(&dir.path().join("unsigned"));
    let (code, out) = pole_check(dir.path(), &unsigned, &trust);
    assert_ne!(code, 0);
    assert!(
        out.contains("not signed") && out.contains("require_signature"),
        "{out}"
    );
    let optional = format!("[model_trust]\nkeys = [\"{city_pub}\"]\n");
    assert_eq!(pole_check(dir.path(), &unsigned, &optional).0, 0);
}

#[test]
fn a_trust_section_that_cannot_work_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = pole_check(
        dir.path(),
        &model_dir(),
        "[model_trust]\nrequire_signature = true\n",
    );
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("pole.toml:6") && out.contains("needs at least one key"),
        "{out}"
    );
    let (code, out) = pole_check(
        dir.path(),
        &model_dir(),
        "[model_trust]\nkeys = [\"/nonexistent/city.pub\"]\n",
    );
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("pole.toml:6") && out.contains("cannot read the public key file"),
        "{out}"
    );
    let (code, out) = pole_check(
        dir.path(),
        &model_dir(),
        "[model_trust]\nkeys = [\"RWQnot-a-key\"]\n",
    );
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("not a minisign public key"), "{out}");
}
