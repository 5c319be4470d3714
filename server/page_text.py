"""The words of every page in Finnish, Swedish and English (`?lang=fi|sv|en`, as the client's
receipt takes them, server/consent_documents.py): one table per page. The template prints the
static ones; the page's module reads the rest (statuses, outcomes and error texts by code) from a
JSON data block, so every language lives here, in tables a test holds complete
(tests/server/test_page_text.py). Vocabulary of the Finnish public sector: asiakas / klient,
suostumus / samtycke, verkostoneuvottelu / case conference, organisaatio, laite / enhet,
ylläpitäjä / administratör."""

from __future__ import annotations

from server.consent_documents import LANGUAGES

__all__ = [
    "ADMIN_PAGE",
    "COMMON",
    "DEVICES_PAGE",
    "EXPORT_PAGE",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "LOGIN_PAGE",
    "PAGES",
]

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

DEVICES_PAGE: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Tämä laite",
        "intro": "Tämän laitteen avaimet luodaan tässä selaimessa, eivätkä ne koskaan lähde siitä.",
        "enrol": "Ota tämä selain käyttöön laitteena",
        "checking": "Tarkistetaan laitteen tilaa…",
        "not_enrolled": "Tätä selainta ei ole vielä otettu käyttöön laitteena.",
        "fingerprint_intro": "Sormenjälki: lue nämä sanat organisaatiosi ylläpitäjälle. "
        "Ylläpitäjän on nähtävä samat sanat ennen kuin hän hyväksyy laitteen.",
        "fingerprint_hex": "Sama sormenjälki heksadesimaalina:",
        "mismatch": "Palvelimella on tälle laitteelle eri avaimet kuin tällä selaimella: pyydä "
        "ylläpitäjää olemaan hyväksymättä sitä.",
        "persistent": "Selaimen tallennustila on pysyvä: selain ei poista avaimia.",
        "not_persistent": "Selaimen tallennustila EI ole pysyvä: selain voi poistaa tämän "
        "laitteen avaimet.",
        "pending": "Odottaa hyväksyntää: organisaatiosi ylläpitäjän on hyväksyttävä tämä laite. "
        "Vertaa sormenjälkeä yhdessä.",
        "approved": "Hyväksytty: tämä laite voi osallistua verkostoneuvotteluihin.",
        "revoked": "Mitätöity: organisaatiosi ylläpitäjä on mitätöinyt tämän laitteen, eikä se "
        "enää saa viestejä.",
        "connecting": "Yhdistetään palvelimeen tämän laitteen nimissä…",
        "connected": "Yhteydessä palvelimeen tämän laitteen nimissä.",
        "disconnected": "Yhteys katkesi. Yhdistetään uudelleen…",
        "cut_off": "Palvelin katkaisi tämän laitteen yhteyden, koska laite on mitätöity "
        "(koodi {code}). Laite ei yhdistä enää.",
        "user_disabled": "Käyttäjätunnuksesi on poistettu käytöstä, joten yhteys katkaistiin.",
        "error": "Virhe",
        "koppi.unauthenticated": "Kirjaudu ensin sisään.",
    },
    "sv": {
        "title": "Den här enheten",
        "intro": "Den här enhetens nycklar skapas i den här webbläsaren och lämnar den aldrig.",
        "enrol": "Registrera den här webbläsaren som enhet",
        "checking": "Kontrollerar enhetens status…",
        "not_enrolled": "Den här webbläsaren är ännu inte registrerad som enhet.",
        "fingerprint_intro": "Fingeravtryck: läs upp de här orden för din organisations "
        "administratör, som måste se samma ord innan hen godkänner enheten.",
        "fingerprint_hex": "Samma fingeravtryck hexadecimalt:",
        "mismatch": "Servern har andra nycklar för den här enheten än den här webbläsaren: be "
        "administratören att inte godkänna den.",
        "persistent": "Webbläsarens lagring är beständig: nycklarna raderas inte.",
        "not_persistent": "Webbläsarens lagring är INTE beständig: webbläsaren kan radera den "
        "här enhetens nycklar.",
        "pending": "Väntar på godkännande: din organisations administratör måste godkänna den "
        "här enheten. Jämför fingeravtrycket tillsammans.",
        "approved": "Godkänd: den här enheten kan delta i nätverksmöten.",
        "revoked": "Återkallad: din organisations administratör har återkallat den här enheten "
        "och den får inga fler meddelanden.",
        "connecting": "Ansluter till servern som den här enheten…",
        "connected": "Ansluten till servern som den här enheten.",
        "disconnected": "Anslutningen bröts. Ansluter igen…",
        "cut_off": "Servern stängde den här enhetens anslutning eftersom enheten har "
        "återkallats (kod {code}). Enheten ansluter inte igen.",
        "user_disabled": "Ditt användarkonto har inaktiverats, så anslutningen stängdes.",
        "error": "Fel",
        "koppi.unauthenticated": "Logga in först.",
    },
    "en": {
        "title": "This device",
        "intro": "The keys of this device are made in this browser and never leave it.",
        "enrol": "Enrol this browser",
        "checking": "Checking this device's state…",
        "not_enrolled": "This browser is not enrolled as a device yet.",
        "fingerprint_intro": "Fingerprint: read these words to your organisation's admin, who "
        "must see the same ones before approving.",
        "fingerprint_hex": "The same fingerprint in hex:",
        "mismatch": "The server holds other keys for this device than this browser: tell your "
        "admin not to approve it.",
        "persistent": "Browser storage is persistent: the keys will not be evicted.",
        "not_persistent": "Browser storage is NOT persistent: the browser may evict this "
        "device's keys.",
        "pending": "Waiting for approval: your organisation's admin must approve this device. "
        "Compare the fingerprint together.",
        "approved": "Approved: this device can take part in case conferences.",
        "revoked": "Revoked: your organisation's admin revoked this device, and it receives "
        "nothing more.",
        "connecting": "Connecting to the server as this device…",
        "connected": "Connected to the server as this device.",
        "disconnected": "The connection was lost. Reconnecting…",
        "cut_off": "The server closed this device's connection because the device was revoked "
        "(code {code}). It will not reconnect.",
        "user_disabled": "Your user account was disabled, so the connection was closed.",
        "error": "Error",
        "koppi.unauthenticated": "Log in first.",
    },
}

ADMIN_PAGE: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Organisaation ylläpito",
        "not_admin": "Tämä sivu on organisaation ylläpitäjille. Sinulla ei ole ylläpitäjän roolia.",
        "org_key": "Organisaation avain",
        "org_key_intro": "Julkinen avain (anna se palvelun ylläpitäjälle hyväksyttäväksi tai "
        "vaihdettavaksi):",
        "create_key": "Luo organisaation avain tässä selaimessa",
        "rotate_key": "Vaihda organisaation avain",
        "no_key": "Tässä selaimessa ei ole organisaation avainta.",
        "nothing_to_rotate": "Vaihdettavaa organisaation avainta ei ole.",
        "rotation_waiting": "Avaimen vaihto odottaa palvelun ylläpitäjää (koppi org rotate); "
        "uusi avain {key}",
        "key_current": "Avaimen sukupolvi {generation} on lokissa.",
        "key_not_admitted": "Palvelun ylläpitäjä ei ole vielä hyväksynyt organisaation avainta.",
        "pending_title": "Hyväksyntää odottavat laitteet",
        "pending_intro": "Hyväksy laite vasta, kun olet verrannut sormenjälkeä ammattilaisen "
        "näytöllä näkyvään.",
        "approved_title": "Hyväksytyt laitteet",
        "approve": "Hyväksy",
        "revoke": "Mitätöi",
        "approved": "Laite hyväksytty: {name}.",
        "revoked": "Laite mitätöity: {name}.",
        "no_fingerprint": "ei sormenjälkeä ({code})",
        "refresh": "Päivitä",
        "professionals": "Ammattilaiset",
        "add_legend": "Lisää ammattilainen",
        "username": "Käyttäjätunnus",
        "username_rule": "Pienet kirjaimet, numerot ja . _ @ -",
        "initial_password": "Ensimmäinen salasana",
        "roles": "Roolit",
        "add": "Lisää ammattilainen",
        "status": "Tila",
        "action": "Toiminto",
        "audit": "Lokitiedot",
        "role.professional": "ammattilainen",
        "role.consent-recorder": "suostumuksen kirjaaja",
        "role.org-admin": "organisaation ylläpitäjä",
        "role.keeper": "asiakirjajärjestelmä",
        "role_of": "{role}, {username}",
        "roles_set": "Käyttäjän {username} roolit: {roles}.",
        "no_roles": "ei rooleja",
        "status.active": "käytössä",
        "status.disabled": "poistettu käytöstä",
        "enable": "Ota käyttöön",
        "disable": "Poista käytöstä",
        "enable_user": "Ota käyttöön {username}",
        "disable_user": "Poista käytöstä {username}",
        "enabled": "{username}: otettu käyttöön.",
        "disabled": "{username}: poistettu käytöstä.",
        "added": "{username} lisätty.",
        "koppi.unauthenticated": "Kirjaudu ensin sisään.",
    },
    "sv": {
        "title": "Organisationens administration",
        "not_admin": "Den här sidan är för organisationens administratörer. Du har inte "
        "administratörsrollen.",
        "org_key": "Organisationens nyckel",
        "org_key_intro": "Publik nyckel (ge den till tjänstens operatör för godkännande eller "
        "byte):",
        "create_key": "Skapa organisationens nyckel i den här webbläsaren",
        "rotate_key": "Byt organisationens nyckel",
        "no_key": "Den här webbläsaren har ingen organisationsnyckel.",
        "nothing_to_rotate": "Det finns ingen organisationsnyckel att byta.",
        "rotation_waiting": "Nyckelbytet väntar på operatören (koppi org rotate); ny nyckel {key}",
        "key_current": "Nyckelgeneration {generation} finns i loggen.",
        "key_not_admitted": "Operatören har ännu inte godkänt någon organisationsnyckel.",
        "pending_title": "Enheter som väntar på godkännande",
        "pending_intro": "Godkänn först när du har jämfört fingeravtrycket med det som "
        "yrkespersonen ser på sin skärm.",
        "approved_title": "Godkända enheter",
        "approve": "Godkänn",
        "revoke": "Återkalla",
        "approved": "Enheten godkändes: {name}.",
        "revoked": "Enheten återkallades: {name}.",
        "no_fingerprint": "inget fingeravtryck ({code})",
        "refresh": "Uppdatera",
        "professionals": "Yrkespersoner",
        "add_legend": "Lägg till en yrkesperson",
        "username": "Användarnamn",
        "username_rule": "Små bokstäver, siffror och . _ @ -",
        "initial_password": "Första lösenord",
        "roles": "Roller",
        "add": "Lägg till yrkesperson",
        "status": "Status",
        "action": "Åtgärd",
        "audit": "Logg",
        "role.professional": "yrkesperson",
        "role.consent-recorder": "registrerar samtycke",
        "role.org-admin": "organisationens administratör",
        "role.keeper": "journalsystem",
        "role_of": "{role}, {username}",
        "roles_set": "Roller för {username}: {roles}.",
        "no_roles": "inga roller",
        "status.active": "aktiv",
        "status.disabled": "inaktiverad",
        "enable": "Aktivera",
        "disable": "Inaktivera",
        "enable_user": "Aktivera {username}",
        "disable_user": "Inaktivera {username}",
        "enabled": "{username}: aktiverad.",
        "disabled": "{username}: inaktiverad.",
        "added": "{username} har lagts till.",
        "koppi.unauthenticated": "Logga in först.",
    },
    "en": {
        "title": "Organisation admin",
        "not_admin": "This page is for your organisation's admins. You do not have the admin role.",
        "org_key": "Organisation key",
        "org_key_intro": "Public key (give it to the operator to admit or rotate):",
        "create_key": "Create the organisation key in this browser",
        "rotate_key": "Rotate the organisation key",
        "no_key": "No organisation key in this browser.",
        "nothing_to_rotate": "There is no organisation key to rotate.",
        "rotation_waiting": "Rotation waiting for the operator (koppi org rotate); new key {key}",
        "key_current": "Key generation {generation} is in the log.",
        "key_not_admitted": "The operator has not admitted an organisation key yet.",
        "pending_title": "Devices waiting for approval",
        "pending_intro": "Approve only after comparing the fingerprint with the professional's "
        "screen.",
        "approved_title": "Approved devices",
        "approve": "Approve",
        "revoke": "Revoke",
        "approved": "Device approved: {name}.",
        "revoked": "Device revoked: {name}.",
        "no_fingerprint": "no fingerprint ({code})",
        "refresh": "Refresh",
        "professionals": "Professionals",
        "add_legend": "Add a professional",
        "username": "Username",
        "username_rule": "Lower-case letters, digits and . _ @ -",
        "initial_password": "Initial password",
        "roles": "Roles",
        "add": "Add professional",
        "status": "Status",
        "action": "Action",
        "audit": "Audit trail",
        "role.professional": "professional",
        "role.consent-recorder": "consent recorder",
        "role.org-admin": "organisation admin",
        "role.keeper": "record system",
        "role_of": "{role} role of {username}",
        "roles_set": "Roles of {username}: {roles}.",
        "no_roles": "none",
        "status.active": "active",
        "status.disabled": "disabled",
        "enable": "Enable",
        "disable": "Disable",
        "enable_user": "Enable {username}",
        "disable_user": "Disable {username}",
        "enabled": "{username}: enabled.",
        "disabled": "{username}: disabled.",
        "added": "{username} added.",
        "koppi.unauthenticated": "Log in first.",
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
    "devices": DEVICES_PAGE,
    "admin": ADMIN_PAGE,
    "export": EXPORT_PAGE,
}
