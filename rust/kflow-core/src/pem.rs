//! PEM certificate bundles as the DER blocks kube's `root_cert` takes (CA files of a sign-in
//! session and of a pod's service account).

use base64::Engine;

/// DER bytes of each `CERTIFICATE` block of a PEM bundle; other blocks and text around them
/// are passed over.
pub fn certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b) = body.take() {
                if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b) {
                    out.push(der);
                }
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn certificate_blocks_decode_and_the_rest_is_passed_over() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n\
                   -----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n AAEC \n-----END CERTIFICATE-----\n";
        assert_eq!(
            super::certificates(pem),
            vec![vec![0u8, 1, 2, 3], vec![0u8, 1, 2]]
        );
    }
}
