"""The words of every page in Finnish, Swedish and English (`?lang=fi|sv|en`, as the client's
receipt takes them, server/consent_documents.py): one table per page. The template prints the
static ones; the page's module reads the rest (statuses, outcomes and error texts by code) from a
JSON data block, so every language lives here, in tables a test holds complete
(tests/server/test_page_text.py). Vocabulary of the Finnish public sector: asiakas / klient,
suostumus / samtycke, verkostoneuvottelu / case conference, organisaatio, laite / enhet,
ylläpitäjä / administratör."""

from __future__ import annotations

from server.consent_documents import LANGUAGES

__all__ = ["COMMON", "EXPORT_PAGE", "LANGUAGES", "LANGUAGE_NAMES", "LOGIN_PAGE", "PAGES"]

EXPORT_PAGE: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Vienti omiin asiakirjoihin",
        "intro": "Tämä laite purkaa salauksen täällä ja vie ne viestit, jotka organisaatiosi saa "
        "tallentaa omiin asiakirjoihinsa. Jokainen vienti on luovutus, jonka kaikki "
        "keskustelun osallistujat näkevät.",
        "client_ref": "Asiakastunniste",
        "purpose": "Käyttötarkoitus",
        "button": "Vie se, minkä organisaationi saa tallentaa",
        "working": "Viedään…",
        "done": "Vietiin {exported} viestiä, hylättiin {refused}.",
        "messages": "Viedyt viestit",
        "refused": "Hylätyt viestit",
        "none": "Ei yhtään.",
        "sender": "Lähettäjä",
        "label": "Saa tallentaa",
        "download": "Lataa JSON (koppi-export/1)",
        "binary": "Muu sisältö ({type}, {bytes} tavua)",
        "error": "Vienti epäonnistui",
        "koppi.no_device_keys": "Tässä selaimessa ei ole laitteen avaimia. Ota selain käyttöön "
        "sivulla /devices ja pyydä ylläpitäjää hyväksymään se.",
        "koppi.not_in_roster": "Tämä laite ei ole keskustelun jäsenluettelossa, joten se ei voi "
        "purkaa viestejä. Pyydä keskustelun jäsentä lisäämään laite.",
        "koppi.not_member": "Et ole tämän keskustelun jäsen.",
        "koppi.no_pins": "Palvelimelle ei ole määritetty juuriavainta tai lokia, joten tämä "
        "selain ei voi tarkistaa laitteiden varmenteita.",
    },
    "sv": {
        "title": "Export till egna handlingar",
        "intro": "Den här enheten dekrypterar här och exporterar de meddelanden som din "
        "organisation får lagra i sina egna handlingar. Varje export är ett utlämnande som "
        "alla deltagare i tråden ser.",
        "client_ref": "Klientreferens",
        "purpose": "Ändamål",
        "button": "Exportera det som min organisation får lagra",
        "working": "Exporterar…",
        "done": "{exported} meddelanden exporterades, {refused} avvisades.",
        "messages": "Exporterade meddelanden",
        "refused": "Avvisade meddelanden",
        "none": "Inga.",
        "sender": "Avsändare",
        "label": "Får lagras av",
        "download": "Ladda ner JSON (koppi-export/1)",
        "binary": "Annat innehåll ({type}, {bytes} byte)",
        "error": "Exporten misslyckades",
        "koppi.no_device_keys": "Den här webbläsaren har inga enhetsnycklar. Registrera den på "
        "sidan /devices och be administratören godkänna den.",
        "koppi.not_in_roster": "Den här enheten finns inte i trådens medlemsförteckning och kan "
        "inte dekryptera meddelandena. Be en medlem i tråden att lägga till enheten.",
        "koppi.not_member": "Du är inte medlem i den här tråden.",
        "koppi.no_pins": "Servern har ingen rotnyckel eller logg konfigurerad, så den här "
        "webbläsaren kan inte kontrollera enheternas certifikat.",
    },
    "en": {
        "title": "Export to our own records",
        "intro": "This device decrypts here and exports the messages your organisation may "
        "store in its own records. Every export is a disclosure that all participants of the "
        "thread see.",
        "client_ref": "Client reference",
        "purpose": "Purpose",
        "button": "Export what my organisation may store",
        "working": "Exporting…",
        "done": "{exported} messages exported, {refused} refused.",
        "messages": "Exported messages",
        "refused": "Refused messages",
        "none": "None.",
        "sender": "Sender",
        "label": "May be stored by",
        "download": "Download JSON (koppi-export/1)",
        "binary": "Other content ({type}, {bytes} bytes)",
        "error": "The export failed",
        "koppi.no_device_keys": "This browser holds no device keys. Enrol it at /devices and ask "
        "your admin to approve it.",
        "koppi.not_in_roster": "This device is not in the thread's roster, so it cannot decrypt "
        "the messages. Ask a member of the thread to add this device.",
        "koppi.not_member": "You are not a member of this thread.",
        "koppi.no_pins": "The server has no root key or log configured, so this browser cannot "
        "check the devices' certificates.",
    },
}

LOGIN_PAGE: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Kirjaudu sisään",
        "username": "Käyttäjätunnus",
        "password": "Salasana",
        "submit": "Kirjaudu",
        "working": "Kirjaudutaan…",
        "done": "Kirjauduit käyttäjänä {username}.",
        "to_app": "Siirry verkostoneuvotteluihin",
        "to_devices": "Uusi selain? Ota se ensin käyttöön laitteena",
        "error": "Kirjautuminen epäonnistui",
        "koppi.login_failed": "Väärä käyttäjätunnus tai salasana.",
        "koppi.rate_limited": "Liian monta kirjautumisyritystä. Yritä myöhemmin uudelleen.",
    },
    "sv": {
        "title": "Logga in",
        "username": "Användarnamn",
        "password": "Lösenord",
        "submit": "Logga in",
        "working": "Loggar in…",
        "done": "Du är inloggad som {username}.",
        "to_app": "Gå till nätverksmötena",
        "to_devices": "Ny webbläsare? Registrera den först som enhet",
        "error": "Inloggningen misslyckades",
        "koppi.login_failed": "Fel användarnamn eller lösenord.",
        "koppi.rate_limited": "För många inloggningsförsök. Försök igen senare.",
    },
    "en": {
        "title": "Log in",
        "username": "Username",
        "password": "Password",
        "submit": "Log in",
        "working": "Logging in…",
        "done": "Logged in as {username}.",
        "to_app": "Go to the case conferences",
        "to_devices": "A new browser? Enrol it as a device first",
        "error": "Logging in failed",
        "koppi.login_failed": "Wrong username or password.",
        "koppi.rate_limited": "Too many login attempts. Try again later.",
    },
}

# What every page shows around its own content (web/templates/base.html).
COMMON: dict[str, dict[str, str]] = {
    "fi": {
        "tagline": "asiakkaan verkostoneuvottelut, päästä päähän salattuina",
        "language": "Kieli",
        "nav": "Sivut",
        "threads": "Neuvottelut",
        "devices": "Tämä laite",
        "admin": "Ylläpito",
    },
    "sv": {
        "tagline": "klientens nätverksmöten, krypterade från ända till ända",
        "language": "Språk",
        "nav": "Sidor",
        "threads": "Möten",
        "devices": "Den här enheten",
        "admin": "Administration",
    },
    "en": {
        "tagline": "case conferences, end-to-end encrypted",
        "language": "Language",
        "nav": "Pages",
        "threads": "Case conferences",
        "devices": "This device",
        "admin": "Administration",
    },
}
LANGUAGE_NAMES = {"fi": "suomeksi", "sv": "på svenska", "en": "in English"}

# Every page's table, by the page's name (the completeness test walks them all).
PAGES: dict[str, dict[str, dict[str, str]]] = {
    "common": COMMON,
    "login": LOGIN_PAGE,
    "export": EXPORT_PAGE,
}
