//! The customer's pages: 3-D Secure, the SBP QR code, and the payment widget.

use qrcode::QrCode;
use qrcode::render::svg;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.6rem 1.2rem;margin:.3rem}}label{{display:block;margin:.5rem 0}}\
         .note{{color:#666;font-size:.9rem}}</style></head><body><h1>{t}</h1>{body}\
         <p class=\"note\">Bank 131 sandbox — no real money moves.</p></body></html>",
        t = escape(title)
    )
}

/// The 3-D Secure page with Approve and Decline.
pub fn three_ds(session_id: &str, amount: &str) -> String {
    let id = escape(session_id);
    page(
        "3-D Secure",
        &format!(
            "<p>Confirm the payment of <strong>{}</strong>.</p>\
             <form method=\"post\" action=\"/3ds/{id}/approve\"><button id=\"approve\" type=\"submit\">Approve</button></form>\
             <form method=\"post\" action=\"/3ds/{id}/decline\"><button id=\"decline\" type=\"submit\">Decline</button></form>",
            escape(amount)
        ),
    )
}

/// The SBP page: the deeplink as a QR code, Pay and Let it expire.
pub fn qr(session_id: &str, deeplink: &str) -> String {
    let id = escape(session_id);
    let image = QrCode::new(deeplink.as_bytes())
        .map(|code| {
            code.render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build()
        })
        .unwrap_or_default();
    page(
        "Pay with SBP",
        &format!(
            "<div>{image}</div><p><a href=\"{link}\">{link}</a></p>\
             <form method=\"post\" action=\"/qr/{id}/pay\"><button id=\"pay\" type=\"submit\">Pay</button></form>\
             <form method=\"post\" action=\"/qr/{id}/expire\"><button id=\"expire\" type=\"submit\">Let it expire</button></form>",
            link = escape(deeplink)
        ),
    )
}

/// The widget: a card form with the "I agree to recurring payments" checkbox.
pub fn widget(public_token: &str, show_recurrent_checkbox: bool) -> String {
    let checkbox = if show_recurrent_checkbox {
        "<label><input type=\"checkbox\" name=\"save\" value=\"true\"> I agree to recurring payments</label>"
    } else {
        ""
    };
    page(
        "Pay by card",
        &format!(
            "<form method=\"post\" action=\"/widget/{}/pay\">\
             <label>Card number <input name=\"number\" autocomplete=\"cc-number\" value=\"4242424242424242\"></label>\
             <label>Customer <input name=\"customer\" value=\"customer\"></label>{checkbox}\
             <button id=\"pay\" type=\"submit\">Pay</button></form>",
            escape(public_token)
        ),
    )
}

/// The widget after the card was entered: the shop has to confirm first.
/// The page reloads itself until there is something to show.
pub fn widget_waiting() -> String {
    page(
        "Processing",
        "<meta http-equiv=\"refresh\" content=\"1\"><p id=\"waiting\">Waiting for the shop to confirm the payment…</p>",
    )
}

/// Shown after the customer acted, when there is no `return_url`.
pub fn done(outcome: &str) -> String {
    page(
        "Done",
        &format!("<p id=\"outcome\">{}</p>", escape(outcome)),
    )
}
