// The browser's key store (web/js/keystore.js: the key files and key pins in IndexedDB) shared by
// the tabs of one browser. When another tab upgrades the database (a newer palreg there), this
// tab's connection closes itself at once (the upgrade is not blocked), the page says to reload,
// with a Reload button, and nothing more is read or written there; the key file stays whole. When
// this tab's own upgrade waits for another tab holding an older version open, the page says to
// close or reload the other palreg tabs, and goes on by itself once they let go, with the key
// file of the older version kept. A key pair published just as another tab upgrades the store is
// not lost: the page keeps it, with its key file to download.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Session, apiAs, createInstitution, createUser, launchBrowser } from './harness.mjs';

const PASSPHRASE = 'long key passphrase 1';
const DB_NAME = 'palreg-keys';
const DB_VERSION = 2;

let browser;
let clinician;
let other;
let third;

before(async () => {
  browser = await launchBrowser();
  const api = await apiAs();
  const institution = await createInstitution(api);
  clinician = await createUser(api, { roles: ['user'], institution_id: institution.id });
  other = await createUser(api, { roles: ['user'], institution_id: institution.id });
  third = await createUser(api, { roles: ['user'], institution_id: institution.id });
  await api.dispose();
});

after(async () => {
  await browser?.close();
});

/** The key store's state in the page (keystore.js). */
const storeState = (page) => page.evaluate(async () => (await import('/js/keystore.js')).keyStoreState());

/**
 * Upgrades the key store to `version` from `tab` (a page of the origin) and keeps the connection
 * open in `window.upgraded`; resolves to `{ version, blocked, keyFile }` (the key file of `login`).
 */
function upgradeFrom(tab, version, login) {
  return tab.evaluate(
    ({ name, version, login }) => new Promise((resolve, reject) => {
      let blocked = false;
      const timer = setTimeout(() => reject(new Error('the upgrade stayed blocked')), 8000);
      const req = indexedDB.open(name, version);
      req.onblocked = () => {
        blocked = true;
      };
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        clearTimeout(timer);
        const db = req.result;
        window.upgraded = db;
        const get = db.transaction('keyfiles').objectStore('keyfiles').get(login);
        get.onsuccess = () => resolve({ version: db.version, blocked, keyFile: get.result ?? null });
        get.onerror = () => reject(get.error);
      };
    }),
    { name: DB_NAME, version, login },
  );
}

/** The notice above the page, when there is one: `{ state, text }`. */
async function storeNotice(page) {
  const box = page.locator('#keystore-notice');
  if (!(await box.count())) return null;
  return { state: await box.getAttribute('data-state'), text: await box.innerText() };
}

test('another tab upgrades the key store: this tab lets it, closes its connection and says to reload', async () => {
  const s = await Session.open(browser);
  try {
    const { page } = s;
    let fingerprint;
    await s.step('keystore-outdated-setup', async () => {
      await s.signIn(clinician.login, clinician.password);
      await s.goto('/keys');
      await page.fill('#key-create-passphrase', PASSPHRASE);
      await page.fill('#key-create-passphrase_repeat', PASSPHRASE);
      await page.click('#main form[data-form-id="key-create"] button[type="submit"]');
      fingerprint = (await page.locator('#my-fingerprint').innerText()).trim();
      assert.equal(await page.locator('#app-notices').isHidden(), true, 'no notice while all is well');
    });

    // The tab that was just updated: the same database, one version up. This tab holds its
    // connection open (it keeps it), so the upgrade goes on only if this tab lets go.
    // (A page of the origin that runs no palreg, not watched: only its IndexedDB is used.)
    const tab = await s.context.newPage();
    await tab.goto('/img/logo.svg');
    const upgrade = await s.step('keystore-outdated-upgrade', () => upgradeFrom(tab, DB_VERSION + 1, clinician.login));
    assert.equal(upgrade.version, DB_VERSION + 1, 'the other tab upgraded the database');
    assert.equal(upgrade.blocked, false, 'this tab closed its connection at once: the upgrade was never blocked');
    assert.ok(JSON.parse(upgrade.keyFile), 'the key file is stored whole');

    await s.step('keystore-outdated-notice', async () => {
      await page.locator('#keystore-notice').waitFor();
      const shown = await storeNotice(page);
      assert.equal(shown.state, 'outdated');
      assert.match(shown.text, /palreg was updated in another tab: reload this page\./);
      assert.equal(await page.locator('#keystore-reload').innerText(), 'Reload');
      assert.equal(await page.getAttribute('#keystore-notice', 'role'), 'alert');
      assert.equal(await storeState(page), 'outdated');
      await s.screenshot('en-keystore-outdated');

      // Nothing more is read or written here: a page that needs the store says why at once.
      await s.goto('/home');
      await s.goto('/keys');
      assert.match(await page.locator('#main .notice-error').innerText(), /palreg was updated in another tab: reload this page/);
      assert.equal(await page.locator('#key-unlock-passphrase, #key-create-passphrase').count(), 0);

      // In Russian too.
      await page.click('#topbar button[lang="ru"]');
      await page.locator('#main h1', { hasText: 'Мои ключи' }).waitFor();
      await page.locator('#keystore-notice', { hasText: 'palreg обновлён в другой вкладке: перезагрузите эту страницу.' }).waitFor();
      assert.equal(await page.locator('#keystore-reload').innerText(), 'Перезагрузить');
      assert.match(await page.locator('#main .notice-error').innerText(), /palreg обновлён в другой вкладке/);
      await s.screenshot('ru-keystore-outdated');
      await page.click('#topbar button[lang="en"]');
      await page.locator('#main h1', { hasText: 'My keys' }).waitFor();
    });

    await s.step('keystore-outdated-reload', async () => {
      // Reloaded, this tab still runs the code of version 2 (a real update would bring the
      // new one): the database is newer than it knows, and it says so again.
      await Promise.all([page.waitForEvent('load'), page.click('#keystore-reload')]);
      await s.waitForRoute('/keys');
      assert.match(await page.locator('#main .notice-error').innerText(), /palreg was updated in another tab: reload this page/);
      assert.equal((await storeNotice(page))?.state, 'outdated');
      // The key file is still there for the newer palreg, the one just made.
      const stored = await tab.evaluate((login) => new Promise((resolve, reject) => {
        const get = window.upgraded.transaction('keyfiles').objectStore('keyfiles').get(login);
        get.onsuccess = () => resolve(get.result ?? null);
        get.onerror = () => reject(get.error);
      }), clinician.login);
      assert.equal(stored, upgrade.keyFile);
      const unlocked = await page.evaluate(async ({ json, passphrase }) => {
        const { loadCrypto } = await import('/js/crypto.js');
        const pair = (await loadCrypto()).UserKeyPair.importKeyFile(json, passphrase);
        const fp = pair.fingerprint;
        pair.free();
        return fp;
      }, { json: stored, passphrase: PASSPHRASE });
      assert.equal(unlocked, fingerprint, 'the stored key file opens to the key made');
    });
    s.assertClean();
  } finally {
    await s.close();
  }
});

test('another tab holds an older version open: this tab asks to close it, and goes on once it is closed', async () => {
  const s = await Session.open(browser);
  try {
    const { page } = s;
    // A tab of the older palreg (database version 1: the key files only), with a key file stored
    // and its connection held open, deaf to version changes.
    const old = await s.context.newPage();
    await old.goto('/img/logo.svg');
    await old.evaluate(({ name, login }) => new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('keyfiles');
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const db = req.result;
        window.oldKeys = db;
        window.versionChanges = [];
        db.onversionchange = (event) => window.versionChanges.push(event.newVersion);
        const put = db.transaction('keyfiles', 'readwrite');
        put.objectStore('keyfiles').put('{"kept": "from version 1"}', login);
        put.oncomplete = () => resolve();
        put.onerror = () => reject(put.error);
      };
    }), { name: DB_NAME, login: other.login });

    await s.step('keystore-blocked', async () => {
      await s.signIn(other.login, other.password);
      await page.evaluate(() => {
        window.location.hash = '#/keys';
      });
      await page.locator('#keystore-notice[data-state="blocked"]').waitFor();
      assert.match((await storeNotice(page)).text, /An older palreg is open in another tab.*Close or reload the other palreg tabs: this page goes on by itself as soon as they let go/);
      assert.equal(await page.getAttribute('#main', 'aria-busy'), 'true', 'the page waits for the key store');
      assert.deepEqual(await old.evaluate(() => window.versionChanges), [DB_VERSION], 'the older tab was asked to let go');
      await s.screenshot('en-keystore-blocked', { fullPage: false });

      await page.click('#topbar button[lang="ru"]');
      await page.locator('#keystore-notice', { hasText: 'Закройте или перезагрузите другие вкладки palreg' }).waitFor();
      await s.screenshot('ru-keystore-blocked', { fullPage: false });
      await page.click('#topbar button[lang="en"]');
      await page.locator('#keystore-notice', { hasText: 'Close or reload the other palreg tabs' }).waitFor();
    });

    await s.step('keystore-unblocked', async () => {
      await old.evaluate(() => window.oldKeys.close());
      await s.waitForRoute('/keys');
      assert.equal(await page.locator('#keystore-notice').count(), 0, 'the notice is gone');
      assert.equal(await page.locator('#app-notices').isHidden(), true);
      assert.equal(await storeState(page), 'ready');
      // Upgraded, with the key file of version 1 kept: the page offers to unlock it.
      await page.locator('#key-unlock-passphrase').waitFor();
      const db = await page.evaluate((name) => new Promise((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onerror = () => reject(req.error);
        req.onsuccess = () => {
          const { version, objectStoreNames } = req.result;
          req.result.close();
          resolve({ version, stores: [...objectStoreNames].sort() });
        };
      }), DB_NAME);
      assert.deepEqual(db, { version: DB_VERSION, stores: ['keyfiles', 'pins'] });
    });
    s.assertClean();
  } finally {
    await s.close();
  }
});

test('a new key pair published just as another tab upgrades the store stays on the page, with its key file', async () => {
  const s = await Session.open(browser);
  try {
    const { page } = s;
    const tab = await s.context.newPage();
    await tab.goto('/img/logo.svg');
    await s.signIn(third.login, third.password);
    await s.goto('/keys');
    await page.fill('#key-create-passphrase', PASSPHRASE);
    await page.fill('#key-create-passphrase_repeat', PASSPHRASE);
    // The other tab upgrades the store while the public key is on its way to the server: the
    // check before publishing passed, the key file can no longer be stored here.
    let upgrade = null;
    await page.route('**/api/v1/me/public-key', async (route) => {
      upgrade = await upgradeFrom(tab, DB_VERSION + 1, third.login);
      await route.continue();
    });
    await page.click('#main form[data-form-id="key-create"] button[type="submit"]');
    await s.step('keystore-not-stored', async () => {
      await s.waitForNotice(/Your new key is published, but this browser could not keep it. Download your key file now/);
      assert.equal(upgrade?.blocked, false);
      assert.equal((await storeNotice(page))?.state, 'outdated');
      const fingerprint = (await page.locator('#my-fingerprint').innerText()).trim();
      assert.match(await page.locator('#main').innerText(), /Download your key file and keep it safe/);
      await s.screenshot('en-keys-not-stored');

      // Nothing half written: no key file in the store; the whole one is the download.
      const stored = await tab.evaluate((login) => new Promise((resolve, reject) => {
        const get = window.upgraded.transaction('keyfiles').objectStore('keyfiles').get(login);
        get.onsuccess = () => resolve(get.result ?? null);
        get.onerror = () => reject(get.error);
      }), third.login);
      assert.equal(stored, null);
      // Still there after a language switch (in the page's memory).
      await page.click('#topbar button[lang="ru"]');
      await s.waitForNotice(/Ваш новый ключ опубликован, но браузер не смог его сохранить/);
      assert.equal((await page.locator('#my-fingerprint').innerText()).trim(), fingerprint);
      assert.equal(await page.locator('#key-download').innerText(), 'Скачать файл ключа');
      await page.click('#topbar button[lang="en"]');
      await s.waitForNotice(/Your new key is published/);
      const [file] = await Promise.all([page.waitForEvent('download'), page.click('#key-download')]);
      const json = await readFile(await file.path(), 'utf8');
      const opened = await page.evaluate(async ({ json, passphrase }) => {
        const { get } = await import('/js/api.js');
        const { loadCrypto } = await import('/js/crypto.js');
        const pair = (await loadCrypto()).UserKeyPair.importKeyFile(json, passphrase);
        const me = await get('/me');
        const members = await get(`/institutions/${me.institution.id}/members`);
        const published = members.members.find((m) => m.user_id === me.id).public_key;
        const out = { fingerprint: pair.fingerprint, published: pair.publicKey === published };
        pair.free();
        return out;
      }, { json, passphrase: PASSPHRASE });
      assert.deepEqual(opened, { fingerprint, published: true }, 'the downloaded file holds the key published');
    });
    s.assertClean();
  } finally {
    await s.close();
  }
});
