//! The backend conformance suite on the in-process `memory://` registry.

tests::conformance_tests!(tests::memory::MemoryBackend::new());
tests::governance_conformance_tests!(tests::memory::MemoryBackend::new());
