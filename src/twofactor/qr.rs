//! A QR code drawn as inline SVG (no script, no image request): the enrolment link for the
//! authenticator app's camera. Encoding is `qrcodegen`'s; this only draws the modules.

use qrcodegen::{QrCode, QrCodeEcc};

/// Modules of quiet zone around the code (ISO/IEC 18004 asks for four).
const BORDER: i32 = 4;

/// `<svg>` of `text` as a QR code (error correction M), scaled by CSS; `None` if it is too long.
pub fn svg(text: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    let dim = size + 2 * BORDER;
    let mut path = String::with_capacity((size * size * 6) as usize);
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + BORDER, y + BORDER));
            }
        }
    }
    Some(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="qr" class="qr" role="img" aria-label="QR code of the enrolment link" viewBox="0 0 {dim} {dim}" width="{px}" height="{px}" shape-rendering="crispEdges"><rect width="{dim}" height="{dim}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##,
        px = dim * 5
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_a_code() {
        let s = super::svg("otpauth://totp/sponts:a@example.org?secret=ABCDEFGH&issuer=sponts")
            .unwrap();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>") && s.contains("h1v1h-1z"));
        // Version 4 or so: 33 modules plus the border.
        assert!(s.contains("viewBox=\"0 0 "), "{s}");
    }
}
