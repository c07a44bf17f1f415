use hpke::rand_core::Rng;

use super::*;

const DOCUMENT: &[u8] = b"Quarterly report X\nRevenue rose in every region.\n";

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn key(seed: u8) -> PrivateKey {
    PrivateKey::generate(&mut rng(seed))
}

/// The parties of one offer: the timekeeper, the responder B1 and a stranger.
struct Parties {
    timekeeper: PrivateKey,
    b1: PrivateKey,
    stranger: PrivateKey,
}

fn parties() -> Parties {
    Parties {
        timekeeper: key(1),
        b1: key(2),
        stranger: key(3),
    }
}

const RELEASE: Release<'static> = Release {
    offer_id: "offer-X",
    subscriber_id: "B1",
    credential_id: "cred-1",
};

/// What the delivery worker hands B1 for an offer sealed in `custody`: the timekeeper re-seals
/// what it holds, the provider (co-sign) seals its kept half.
fn delivered(parties: &Parties, custody: Custody) -> CredentialDelivered {
    let sealed = seal_offer(
        "offer-X",
        DOCUMENT,
        custody,
        &parties.timekeeper.public_key(),
        &mut rng(9),
    )
    .unwrap();
    let responder = parties.b1.public_key();
    let credential = &sealed.credential;
    let platform = open_from_provider(
        &credential.platform_half,
        Half::Platform,
        "offer-X",
        &parties.timekeeper,
    )
    .unwrap();
    let provider = match (&credential.escrow_half, &sealed.kept_half) {
        (Some(escrow), None) => {
            open_from_provider(escrow, Half::Provider, "offer-X", &parties.timekeeper).unwrap()
        }
        (None, Some(kept)) => KeyHalf::from_bytes(kept.as_bytes()).unwrap(),
        other => panic!("custody {custody:?} gave {other:?}"),
    };
    CredentialDelivered {
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        credential_id: RELEASE.credential_id.into(),
        offer_id: RELEASE.offer_id.into(),
        subscriber_id: RELEASE.subscriber_id.into(),
        package: credential.package.clone(),
        platform_half: seal_to_responder(&platform, Half::Platform, &RELEASE, &responder).unwrap(),
        provider_half: seal_to_responder(&provider, Half::Provider, &RELEASE, &responder).unwrap(),
        attempts: 1,
        provider_id: String::new(),
        provider_signing_key: Vec::new(),
        package_signature: Vec::new(),
    }
}

#[test]
fn a_credential_opens_for_its_responder_in_either_custody() {
    let parties = parties();
    for custody in [Custody::CoSign, Custody::Escrow] {
        let delivered = delivered(&parties, custody);
        let opened = open_credential(&delivered, &parties.b1).unwrap();
        assert_eq!(opened.as_slice(), DOCUMENT, "{custody:?}");
    }
}

#[test]
fn custody_decides_who_keeps_the_provider_half() {
    let timekeeper = key(1).public_key();
    let cosign = seal_offer("o", DOCUMENT, Custody::CoSign, &timekeeper, &mut rng(4)).unwrap();
    assert!(cosign.kept_half.is_some() && cosign.credential.escrow_half.is_none());
    assert_eq!(check_credential(&cosign.credential), Ok(()));
    let escrow = seal_offer("o", DOCUMENT, Custody::Escrow, &timekeeper, &mut rng(4)).unwrap();
    assert!(escrow.kept_half.is_none() && escrow.credential.escrow_half.is_some());
    assert_eq!(check_credential(&escrow.credential), Ok(()));
}

#[test]
fn the_package_holds_no_plaintext_and_either_half_alone_opens_nothing() {
    let parties = parties();
    let sealed = seal_offer(
        "offer-X",
        DOCUMENT,
        Custody::CoSign,
        &parties.timekeeper.public_key(),
        &mut rng(5),
    )
    .unwrap();
    let package = &sealed.credential.package;
    assert!(!package.windows(9).any(|w| w == b"Quarterly"));
    let platform = open_from_provider(
        &sealed.credential.platform_half,
        Half::Platform,
        "offer-X",
        &parties.timekeeper,
    )
    .unwrap();
    let provider = sealed.kept_half.unwrap();
    assert_eq!(
        open_package(package, "offer-X", &platform, &provider)
            .unwrap()
            .as_slice(),
        DOCUMENT
    );
    assert_ne!(platform.as_bytes(), provider.as_bytes());
    // A half alone, with anything in place of the other (zeros, itself), is not the key.
    let zeros = KeyHalf::from_bytes(&[0; KEY_LEN]).unwrap();
    for (a, b) in [
        (&platform, &zeros),
        (&zeros, &provider),
        (&platform, &platform),
        (&provider, &provider),
    ] {
        assert_eq!(
            open_package(package, "offer-X", a, b).unwrap_err(),
            SealError::Package
        );
    }
}

#[test]
fn halves_open_only_for_their_recipient_and_binding() {
    let parties = parties();
    let sealed = seal_offer(
        "offer-X",
        DOCUMENT,
        Custody::Escrow,
        &parties.timekeeper.public_key(),
        &mut rng(6),
    )
    .unwrap();
    let platform_half = &sealed.credential.platform_half;
    let escrow_half = sealed.credential.escrow_half.as_ref().unwrap();
    let platform_fails = |offer: &str, half: Half, key: &PrivateKey| {
        open_from_provider(platform_half, half, offer, key).unwrap_err()
    };
    assert_eq!(
        platform_fails("offer-X", Half::Platform, &parties.stranger),
        SealError::Open("platform half")
    );
    assert!(matches!(
        platform_fails("offer-Y", Half::Platform, &parties.timekeeper),
        SealError::Open(_)
    ));
    // A box moved into the other half's field does not open as that half.
    assert!(matches!(
        platform_fails("offer-X", Half::Provider, &parties.timekeeper),
        SealError::Open(_)
    ));
    assert!(
        open_from_provider(escrow_half, Half::Platform, "offer-X", &parties.timekeeper).is_err()
    );

    let delivered = delivered(&parties, Custody::CoSign);
    assert_eq!(
        open_credential(&delivered, &parties.stranger).unwrap_err(),
        SealError::Open("platform half")
    );
    for tamper in [
        |d: &mut CredentialDelivered| d.offer_id = "offer-Y".into(),
        |d: &mut CredentialDelivered| d.subscriber_id = "B2".into(),
        |d: &mut CredentialDelivered| d.credential_id = "cred-2".into(),
        |d: &mut CredentialDelivered| std::mem::swap(&mut d.platform_half, &mut d.provider_half),
    ] {
        let mut moved = delivered.clone();
        tamper(&mut moved);
        assert!(
            matches!(
                open_credential(&moved, &parties.b1),
                Err(SealError::Open(_))
            ),
            "{moved:?}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_fails_with_the_part_named() {
    let parties = parties();
    let delivered = delivered(&parties, Custody::CoSign);
    let flip = |bytes: &mut Vec<u8>, at: usize| bytes[at] ^= 0x01;
    type Field = fn(&mut CredentialDelivered) -> &mut Vec<u8>;
    let cases: [(Field, SealError); 5] = [
        (|d| &mut d.package, SealError::Package),
        (
            |d| &mut d.platform_half.ciphertext,
            SealError::Open("platform half"),
        ),
        (
            |d| &mut d.platform_half.enc,
            SealError::Open("platform half"),
        ),
        (
            |d| &mut d.provider_half.ciphertext,
            SealError::Open("provider half"),
        ),
        (
            |d| &mut d.provider_half.enc,
            SealError::Open("provider half"),
        ),
    ];
    for (part, error) in cases {
        let len = part(&mut delivered.clone()).len();
        for at in [0, len / 2, len - 1] {
            let mut tampered = delivered.clone();
            flip(part(&mut tampered), at);
            assert_eq!(
                open_credential(&tampered, &parties.b1).unwrap_err(),
                error,
                "byte {at}"
            );
        }
    }
    let mut short = delivered.clone();
    short.package.truncate(TAG_LEN - 1);
    assert_eq!(
        open_credential(&short, &parties.b1).unwrap_err(),
        SealError::Package
    );
}

#[test]
fn sealing_to_a_responder_is_deterministic_and_bound_to_the_release() {
    let half = KeyHalf::from_bytes(&[7; KEY_LEN]).unwrap();
    let b1 = key(2).public_key();
    let once = seal_to_responder(&half, Half::Platform, &RELEASE, &b1).unwrap();
    let again = seal_to_responder(&half, Half::Platform, &RELEASE, &b1).unwrap();
    assert_eq!(once, again, "a replay seals the same bytes");
    let other_release = Release {
        credential_id: "cred-2",
        ..RELEASE
    };
    let other = seal_to_responder(&half, Half::Platform, &other_release, &b1).unwrap();
    assert_ne!(
        once.enc, other.enc,
        "each release has its own ephemeral key"
    );
    let provider = seal_to_responder(&half, Half::Provider, &RELEASE, &b1).unwrap();
    assert_ne!(once.enc, provider.enc);
    let other_half = KeyHalf::from_bytes(&[8; KEY_LEN]).unwrap();
    let unpredictable = seal_to_responder(&other_half, Half::Platform, &RELEASE, &b1).unwrap();
    assert_ne!(once.enc, unpredictable.enc, "the seed is the half's secret");
}

#[test]
fn a_low_order_responder_key_cannot_be_sealed_to() {
    let half = KeyHalf::from_bytes(&[7; KEY_LEN]).unwrap();
    let zero = PublicKey::from_bytes(&[0; KEY_LEN]).unwrap();
    assert_eq!(
        seal_to_responder(&half, Half::Provider, &RELEASE, &zero).unwrap_err(),
        SealError::Seal("provider half")
    );
}

#[test]
fn target_data_too_large_for_an_offer_is_refused() {
    let timekeeper = key(1).public_key();
    // Random bytes do not compress.
    let mut noise = vec![0u8; MAX_PACKAGE_LEN];
    rng(8).fill_bytes(&mut noise);
    let error = seal_offer("o", &noise, Custody::CoSign, &timekeeper, &mut rng(8)).unwrap_err();
    assert!(
        matches!(
            error,
            SealError::PackageTooLarge {
                max: MAX_PACKAGE_LEN,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("at most 786432 bytes inline"),
        "{error}"
    );
    // Zeros compress well, so a package of them fits.
    let zeros = vec![0u8; 4 * MAX_PACKAGE_LEN];
    let sealed = seal_offer("o", &zeros, Custody::CoSign, &timekeeper, &mut rng(8)).unwrap();
    assert!(sealed.credential.package.len() < MAX_PACKAGE_LEN);
}

#[test]
fn a_package_that_inflates_past_the_limit_is_refused() {
    let platform = KeyHalf::from_bytes(&[1; KEY_LEN]).unwrap();
    let provider = KeyHalf::from_bytes(&[2; KEY_LEN]).unwrap();
    let bomb = vec![0u8; MAX_TARGET_DATA_LEN + 1];
    let mut package = miniz_oxide::deflate::compress_to_vec_zlib(&bomb, 6);
    let (cipher, nonce) = package_cipher(&platform.xor(&provider));
    let aad = bound(PACKAGE_AAD, &[b"o"]);
    let tag = cipher
        .encrypt_inout_detached(&nonce, &aad, package.as_mut_slice().into())
        .unwrap();
    package.extend_from_slice(&tag);
    assert_eq!(
        open_package(&package, "o", &platform, &provider).unwrap_err(),
        SealError::Inflated {
            max: MAX_TARGET_DATA_LEN
        }
    );
}

#[test]
fn credential_shapes_are_checked_without_a_key() {
    let timekeeper = key(1).public_key();
    let good = seal_offer("o", DOCUMENT, Custody::Escrow, &timekeeper, &mut rng(4))
        .unwrap()
        .credential;
    type Damage = fn(&mut SealedCredential);
    let broken: [(Damage, &str); 5] = [
        (
            |c| c.platform_half.enc.pop().map_or((), drop),
            "the sealed platform half is 31+48 bytes, not 32+48",
        ),
        (
            |c| c.escrow_half = None,
            "escrow custody without the provider half sealed to the timekeeper",
        ),
        (
            |c| c.custody = Custody::CoSign,
            "co-sign custody, yet the provider half is sealed to the timekeeper",
        ),
        (
            |c| c.package.truncate(3),
            "the package is 3 bytes, shorter than its tag",
        ),
        (
            |c| c.package.resize(MAX_PACKAGE_LEN + 1, 0),
            "the package is 786433 bytes, more than the 786432 an offer carries",
        ),
    ];
    for (break_it, expected) in broken {
        let mut credential = good.clone();
        break_it(&mut credential);
        assert_eq!(check_credential(&credential), Err(expected.to_string()));
    }
}

#[test]
fn public_keys_read_back_from_their_text_and_bad_keys_say_why() {
    let public = key(2).public_key();
    let text = public.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text.parse::<PublicKey>().unwrap(), public);
    assert_eq!(
        format!(" {} \n", text.to_uppercase())
            .parse::<PublicKey>()
            .unwrap(),
        public
    );
    for bad in [
        "",
        "00",
        &text[..62],
        &format!("{}zz", &text[..62]),
        &format!("{text}00"),
    ] {
        assert_eq!(
            bad.parse::<PublicKey>().unwrap_err(),
            KeyError::PublicText,
            "{bad:?}"
        );
    }
    assert_eq!(
        PublicKey::from_bytes(&[1; 31]).unwrap_err(),
        KeyError::PublicLength(31)
    );
    assert_eq!(
        PrivateKey::from_bytes(&[1; 33]).unwrap_err(),
        KeyError::PrivateLength(33)
    );
    assert_eq!(
        KeyError::PrivateLength(33).to_string(),
        "an X25519 private key is 32 bytes, not 33"
    );
}

#[test]
fn secrets_never_print_their_bytes() {
    let private = PrivateKey::from_bytes(&[0x5a; KEY_LEN]).unwrap();
    let secret_hex: String = private
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let debug = format!("{private:?}");
    assert!(!debug.contains(&secret_hex[..16]), "{debug}");
    assert!(debug.contains(&private.public_key().to_string()));
    let half = KeyHalf::from_bytes(&[0x5a; KEY_LEN]).unwrap();
    assert_eq!(format!("{half:?}"), "KeyHalf(..)");
    let sealed = seal_offer(
        "o",
        DOCUMENT,
        Custody::CoSign,
        &key(1).public_key(),
        &mut rng(1),
    )
    .unwrap();
    assert!(format!("{sealed:?}").contains("kept_half: Some(KeyHalf(..))"));
}

#[test]
fn a_sealed_half_has_its_shape_and_nothing_else_does() {
    let delivered = delivered(&parties(), Custody::Escrow);
    assert_eq!(
        check_sealed_half(&delivered.platform_half, Half::Platform),
        Ok(())
    );
    assert_eq!(
        check_sealed_half(&delivered.provider_half, Half::Provider),
        Ok(())
    );
    let mut short = delivered.platform_half.clone();
    short.ciphertext.pop();
    let mut long_enc = delivered.platform_half.clone();
    long_enc.enc.push(0);
    let empty = SealedBox {
        enc: Vec::new(),
        ciphertext: Vec::new(),
    };
    for bad in [short, long_enc, empty] {
        assert_eq!(
            check_sealed_half(&bad, Half::Platform),
            Err(SealError::Malformed("platform half"))
        );
    }
}
