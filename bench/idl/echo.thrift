// The benchmark's echo for CloudWeGo Volo (system `volo`, built with `--features volo`):
// the same call as the other systems, the reply is the request's payload.
namespace rs bench

service Echo {
    binary echo(1: binary data)
}
