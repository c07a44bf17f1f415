//! Every released schema version under `avro/history/`, compiled in so the codec knows each
//! earlier writer schema by its fingerprint without reading files at run time. Adding a version is
//! adding its file and its number here; `evolution`'s test `the_list_is_the_history_directory`
//! fails until both are done.

/// (event's directory, version, path inside `avro/history/`, text) for each listed version.
macro_rules! released {
    ($($dir:literal => [$($version:literal),+],)+) => {
        pub(crate) const FILES: &[(&str, u32, &str, &str)] = &[$($((
            $dir,
            $version,
            concat!($dir, "/v", $version, ".avsc"),
            include_str!(concat!("../../avro/history/", $dir, "/v", $version, ".avsc")),
        ),)+)+];
    };
}

released! {
    "credential_accepted" => [1],
    "credential_declined" => [1],
    "credential_delivered" => [1, 2],
    "credential_released" => [1, 2],
    "dead_letter" => [1, 2, 3],
    "delivery_failed" => [1],
    "interaction_requested" => [1, 2, 3],
    "key_published" => [1, 2],
    "notice" => [1],
    "offer_closed" => [1],
    "offer_published" => [1, 2, 3, 4, 5],
    "offer_rejected" => [1],
    "offer_withdrawn" => [1],
    "package_chunk" => [1],
    "provider_share_released" => [1],
    "response_rejected" => [1],
    "response_submitted" => [1],
    "reward_credited" => [1],
    "reward_due" => [1],
    "subscriber_registered" => [1, 2, 3],
    "subscriber_removed" => [1],
    "tick" => [1],
}
