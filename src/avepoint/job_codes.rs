//! The documented codes and names of backup job types and modules, and the
//! labels the exporter gives them.
//!
//! The jobs endpoint sends codes (`"jobType": 7`, `"jobModule": 304`); the
//! coverage overview sends names (`"serviceType": "Cloud Backup for
//! Microsoft 365"`, `"serviceModule": "Microsoft 365 Group"`). Both map onto
//! one label per module, so coverage and job series join.

/// What a job does: only backups feed the backup alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A backup (every documented backup module, and any undocumented code,
    /// so that a new module's failures are not missed).
    Backup,
    /// A scan job (`jobType` 0 and 10).
    Scan,
    /// An Archiver job (module 8).
    Archiver,
    /// A retention job (module 10).
    Retention,
    /// Admin portal settings (module 360).
    Settings,
}

impl JobKind {
    /// The kind of a job of this type and module.
    pub fn of(job_type: i64, job_module: i64) -> JobKind {
        match (job_type, job_module) {
            (0 | 10, _) => JobKind::Scan,
            (_, 8) => JobKind::Archiver,
            (_, 10) => JobKind::Retention,
            (_, 360) => JobKind::Settings,
            _ => JobKind::Backup,
        }
    }

    /// The `job_kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Scan => "scan",
            JobKind::Archiver => "archiver",
            JobKind::Retention => "retention",
            JobKind::Settings => "settings",
        }
    }
}

/// Documented `jobType` codes: (code, label, the service's name).
const JOB_TYPES: [(i64, &str, &str); 7] = [
    (0, "microsoft_365_scan", "Microsoft 365 Scan"),
    (7, "microsoft_365", "Cloud Backup for Microsoft 365"),
    (10, "google_workspace_scan", "Google Workspace Scan"),
    (11, "google_workspace", "Cloud Backup for Google Workspace"),
    (12, "iaas_paas", "Cloud Backup for IaaS + PaaS"),
    (15, "salesforce", "Cloud Backup for Salesforce"),
    (16, "dynamics_365", "Cloud Backup for Dynamics 365"),
];

/// Documented `jobModule` codes: (code, label). Each label is the
/// documented name in snake_case.
const JOB_MODULES: [(i64, &str); 48] = [
    (0, "none"),
    (8, "archiver"),
    (10, "retention"),
    (302, "sharepoint_online"),
    (303, "exchange_online"),
    (304, "microsoft_365_groups"),
    (305, "onedrive"),
    (306, "project_online"),
    (307, "exchange_online_public_folder"),
    (308, "microsoft_teams"),
    (309, "teams_chat"),
    (310, "power_bi"),
    (311, "power_automate"),
    (312, "power_apps"),
    (355, "cloud_backup_for_azure"),
    (356, "azure_virtual_machine"),
    (357, "disk"),
    (358, "microsoft_entra_id"),
    (359, "storage"),
    (360, "admin_portal_settings"),
    (361, "amazon_ec2"),
    (362, "native_azure_sql_backup_monitoring"),
    (363, "dev_ops"),
    (364, "microsoft_entra_id_b2c"),
    (365, "azure_sql_backup"),
    (366, "google_virtual_machine_instance"),
    (367, "azure_vmware_solution"),
    (368, "microsoft_sql_server_in_azure_vm"),
    (369, "google_cloud_storage"),
    (370, "cosmos_db"),
    (371, "azure_postgresql"),
    (401, "dynamics_365"),
    (402, "viva_engage"),
    (501, "gmail"),
    (502, "calendar"),
    (503, "contacts"),
    (504, "drive"),
    (505, "shared_drives"),
    (506, "google_classroom"),
    (507, "chat"),
    (508, "google_directory"),
    (550, "dynamics_crm_backup"),
    (551, "dynamics_unified_operations_backup"),
    // Names the coverage overview uses for modules whose job name differs.
    (304, "microsoft_365_group"),
    (305, "onedrive_for_business"),
    (307, "exchange_online_public_folders"),
    (308, "teams"),
    (402, "yammer"),
];

/// The `job_type` label of a documented `jobType` code, `other_<code>` else.
pub fn job_type_label(code: i64) -> String {
    JOB_TYPES
        .iter()
        .find(|(known, _, _)| *known == code)
        .map_or_else(
            || format!("other_{code}"),
            |(_, label, _)| (*label).to_owned(),
        )
}

/// The `job_module` label of a documented `jobModule` code, `other_<code>`
/// else. The first entry of a code is its label; later ones are aliases.
pub fn job_module_label(code: i64) -> String {
    JOB_MODULES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or_else(|| format!("other_{code}"), |(_, label)| (*label).to_owned())
}

/// The `jobType` code of a service name as the coverage overview sends it
/// (`"Cloud Backup for Microsoft 365"`), if documented.
pub(super) fn job_type_of_name(name: &str) -> Option<i64> {
    let wanted = snake_case(name);
    JOB_TYPES
        .iter()
        .find(|(_, label, documented)| snake_case(documented) == wanted || *label == wanted)
        .map(|(code, _, _)| *code)
}

/// The `jobModule` code of a module name as the coverage overview sends it
/// (`"Microsoft 365 Group"`), if documented.
pub(super) fn job_module_of_name(name: &str) -> Option<i64> {
    let wanted = snake_case(name);
    JOB_MODULES
        .iter()
        .find(|(_, label)| *label == wanted)
        .map(|(code, _)| *code)
}

/// `Exchange Online` -> `exchange_online`; `IaaS + PaaS` -> `iaas_paas`.
pub(super) fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_module_code_has_its_name() {
        assert_eq!(job_module_label(304), "microsoft_365_groups");
        assert_eq!(job_module_label(360), "admin_portal_settings");
        assert_eq!(job_module_label(364), "microsoft_entra_id_b2c");
        assert_eq!(job_module_label(505), "shared_drives");
        assert_eq!(job_module_label(551), "dynamics_unified_operations_backup");
        assert_eq!(job_module_label(-3), "other_-3");
        let documented: Vec<i64> = [0, 8, 10]
            .into_iter()
            .chain(302..=312)
            .chain(355..=371)
            .chain([401, 402])
            .chain(501..=508)
            .chain([550, 551])
            .collect();
        for code in documented {
            assert!(
                !job_module_label(code).starts_with("other_"),
                "module {code} has no name"
            );
        }
    }

    #[test]
    fn coverage_names_join_the_job_labels() {
        assert_eq!(job_type_of_name("Cloud Backup for Microsoft 365"), Some(7));
        assert_eq!(job_type_of_name("Cloud Backup for IaaS + PaaS"), Some(12));
        assert_eq!(job_module_of_name("Microsoft 365 Group"), Some(304));
        assert_eq!(job_module_of_name("Microsoft 365 Groups"), Some(304));
        assert_eq!(job_module_of_name("Exchange Online"), Some(303));
        assert_eq!(job_module_of_name("OneDrive for Business"), Some(305));
        assert_eq!(job_module_of_name("Something New"), None);
        assert_eq!(snake_case(" Exchange Online (EXO) "), "exchange_online_exo");
    }

    #[test]
    fn scans_archiver_retention_and_settings_are_not_backups() {
        assert_eq!(JobKind::of(0, 303), JobKind::Scan);
        assert_eq!(JobKind::of(10, 501), JobKind::Scan);
        assert_eq!(JobKind::of(7, 8), JobKind::Archiver);
        assert_eq!(JobKind::of(7, 10), JobKind::Retention);
        assert_eq!(JobKind::of(12, 360), JobKind::Settings);
        assert_eq!(JobKind::of(7, 304), JobKind::Backup);
        assert_eq!(JobKind::of(99, 999), JobKind::Backup);
    }
}
