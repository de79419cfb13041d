//! The layout JSON mapped onto Nacos instances (docs/nacos-registry.md):
//!
//! | layout field | Nacos |
//! |---|---|
//! | `service`, `version` | the service name `<service>:<version>`, in the URL's group; also metadata `rpc.service`, `rpc.version` |
//! | `host`, `port` | `ip`, `port` |
//! | `weight` | `weight` (a float in Nacos; read back rounded) |
//! | `metadata` | `metadata`, as is |
//! | `registered_at_ms` | metadata `rpc.registered_at_ms` (decimal) |
//! | `transport` | metadata `rpc.transport`, when set (`tls`) |
//!
//! Instances are ephemeral, in the cluster `DEFAULT`. An instance registered by another
//! Nacos client (no `rpc.*` keys) reads as a provider of the service its name says, weight
//! rounded, `registered_at_ms` 0. Instances that are disabled or unhealthy are left out.

use std::collections::{BTreeMap, HashMap};

use nacos_sdk::api::naming::ServiceInstance as NacosInstance;
use rpc_core::registry::{ServiceInstance, ServiceKey};

/// Metadata key holding the layout's service name.
pub(crate) const SERVICE: &str = "rpc.service";
/// Metadata key holding the layout's version.
pub(crate) const VERSION: &str = "rpc.version";
/// Metadata key holding `registered_at_ms`.
pub(crate) const REGISTERED_AT: &str = "rpc.registered_at_ms";
/// Metadata key holding `transport` (absent for plain TCP).
pub(crate) const TRANSPORT: &str = "rpc.transport";

/// The Nacos service name of a service key: `<name>:<version>`. Refuses `@@`, which the SDK
/// reads as the separator between group and service.
pub(crate) fn service_name(key: &ServiceKey) -> Result<String, String> {
    let name = key.to_string();
    if name.contains("@@") {
        return Err(format!(
            "service key {name:?} contains \"@@\", Nacos's group separator"
        ));
    }
    Ok(name)
}

/// The Nacos instance that stands for `instance`.
pub(crate) fn to_nacos(instance: &ServiceInstance) -> NacosInstance {
    let mut metadata: HashMap<String, String> = instance
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.insert(SERVICE.into(), instance.service.clone());
    metadata.insert(VERSION.into(), instance.version.clone());
    metadata.insert(REGISTERED_AT.into(), instance.registered_at_ms.to_string());
    if let Some(transport) = &instance.transport {
        metadata.insert(TRANSPORT.into(), transport.clone());
    }
    NacosInstance {
        ip: instance.host.clone(),
        port: i32::from(instance.port),
        weight: f64::from(instance.weight),
        metadata,
        ..NacosInstance::default()
    }
}

/// Reads a Nacos instance of `key` back; an error says why it is skipped.
pub(crate) fn from_nacos(
    key: &ServiceKey,
    nacos: &NacosInstance,
) -> Result<ServiceInstance, String> {
    let port = u16::try_from(nacos.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {} is not 1-65535", nacos.port))?;
    if nacos.ip.is_empty() {
        return Err("no ip".into());
    }
    let weight = nacos.weight.round();
    if !(0.0..=f64::from(u32::MAX)).contains(&weight) {
        return Err(format!(
            "weight {} is not a non-negative number",
            nacos.weight
        ));
    }
    let mut metadata: BTreeMap<String, String> = nacos
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let service = metadata.remove(SERVICE);
    let version = metadata.remove(VERSION);
    if service.as_deref().is_some_and(|s| s != key.name())
        || version.as_deref().is_some_and(|v| v != key.version())
    {
        return Err(format!(
            "metadata names {}:{} but the instance is under {key}",
            service.unwrap_or_default(),
            version.unwrap_or_default()
        ));
    }
    let metadata_transport = metadata.remove(TRANSPORT);
    let registered_at_ms = match metadata.remove(REGISTERED_AT) {
        Some(ms) => ms
            .parse::<u64>()
            .map_err(|_| format!("{REGISTERED_AT} {ms:?} is not a number"))?,
        None => 0,
    };
    Ok(ServiceInstance {
        service: key.name().to_string(),
        version: key.version().to_string(),
        host: nacos.ip.clone(),
        port,
        weight: weight as u32,
        metadata,
        registered_at_ms,
        transport: metadata_transport,
    })
}

/// Whether consumers should see the instance at all.
pub(crate) fn serving(nacos: &NacosInstance) -> bool {
    nacos.enabled && nacos.healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_layout_field() {
        let key = ServiceKey::new("example.Greeter", "1.0.0");
        let mut inst = ServiceInstance::new(&key, "10.0.0.1", 9101);
        inst.weight = 42;
        inst.metadata.insert("zone".into(), "eu-1".into());
        inst.metadata.insert("rpc.tag".into(), "blue".into());
        let nacos = to_nacos(&inst);
        assert_eq!(
            (nacos.ip.as_str(), nacos.port, nacos.weight),
            ("10.0.0.1", 9101, 42.0)
        );
        assert!(nacos.ephemeral);
        assert!(!nacos.metadata.contains_key(TRANSPORT));
        assert_eq!(from_nacos(&key, &nacos).unwrap(), inst);
        inst.transport = Some("tls".into());
        let nacos = to_nacos(&inst);
        assert_eq!(nacos.metadata[TRANSPORT], "tls");
        assert_eq!(from_nacos(&key, &nacos).unwrap(), inst);
    }

    #[test]
    fn foreign_and_bad_instances() {
        let key = ServiceKey::new("s", "1");
        let foreign = NacosInstance {
            ip: "10.0.0.2".into(),
            port: 80,
            weight: 1.0,
            ..NacosInstance::default()
        };
        let read = from_nacos(&key, &foreign).unwrap();
        assert_eq!((read.weight, read.registered_at_ms), (1, 0));
        let mut other = to_nacos(&ServiceInstance::new(&ServiceKey::new("t", "1"), "h", 1));
        assert!(from_nacos(&key, &other).is_err());
        other.metadata.remove(SERVICE);
        other.metadata.insert(REGISTERED_AT.into(), "soon".into());
        assert!(from_nacos(&key, &other).is_err());
        assert!(service_name(&ServiceKey::new("a@@b", "1")).is_err());
    }
}
