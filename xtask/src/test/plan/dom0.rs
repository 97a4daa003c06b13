//! What dom0 runs against each kind of network guest, once its network is
//! up, and around the disk and libvirt tests (`scripts/dom0/tests/`).
pub const ECHO: &str = include_str!("../../../../scripts/dom0/tests/echo.sh");
pub const HTTPD: &str = include_str!("../../../../scripts/dom0/tests/httpd.sh");
pub const HTTPD_AFTER: &str = include_str!("../../../../scripts/dom0/tests/httpd-after.sh");
pub const TCP_TX: &str = include_str!("../../../../scripts/dom0/tests/tcp-tx.sh");
pub const HTTPD_ABUSE: &str = include_str!("../../../../scripts/dom0/tests/httpd-abuse.sh");
pub const DETACH: &str = include_str!("../../../../scripts/dom0/tests/detach.sh");
pub const DHCP: &str = include_str!("../../../../scripts/dom0/tests/dhcp.sh");
pub const CYCLES: &str = include_str!("../../../../scripts/dom0/tests/cycles.sh");
// The save/restore and migration scripts share lib.sh, prepended.
macro_rules! with_lib {
    ($script:literal) => {
        concat!(
            include_str!("../../../../scripts/dom0/tests/lib.sh"),
            include_str!(concat!("../../../../scripts/dom0/tests/", $script))
        )
    };
}
pub const SAVERESTORE: &str = with_lib!("saverestore.sh");
pub const CHECKPOINT: &str = with_lib!("checkpoint.sh");
pub const MIGRATE: &str = with_lib!("migrate.sh");
pub const MIGRATE_2HOST: &str = with_lib!("migrate2host.sh");
pub const VIRSH_MIGRATE: &str = with_lib!("virsh-migrate.sh");
pub const HOSTILE_XENSTORE: &str = with_lib!("hostile-xenstore.sh");
pub const SOAK: &str = with_lib!("soak.sh");
pub const HOSTILE_BACKEND: &str = with_lib!("hostile-backend.sh");
pub const BLK_BEFORE: &str = include_str!("../../../../scripts/dom0/tests/blk-before.sh");
pub const BLK_AFTER: &str = include_str!("../../../../scripts/dom0/tests/blk-after.sh");
pub const STORE_BEFORE: &str = include_str!("../../../../scripts/dom0/tests/store-before.sh");
pub const STORE_AFTER: &str = include_str!("../../../../scripts/dom0/tests/store-after.sh");
pub const STORE_CRASH: &str = include_str!("../../../../scripts/dom0/tests/store-crash.sh");
pub const FAT_BEFORE: &str = include_str!("../../../../scripts/dom0/tests/fat-before.sh");
pub const FAT_AFTER: &str = include_str!("../../../../scripts/dom0/tests/fat-after.sh");
pub const VIRSH_AFTER: &str = include_str!("../../../../scripts/dom0/tests/virsh-after.sh");
pub const VIRSH_SAVE_AFTER: &str =
    include_str!("../../../../scripts/dom0/tests/virsh-save-after.sh");
