// Every page of the client. A new page is a module that calls registerPage() (router.js) and
// one import line here; its menu entry appears for the users whose permissions allow it.
//
// Menu sections in order. A section shows only when it has a page the user may open, so the
// sections of pages still to come can be declared here now.
import { registerSection } from '../router.js';

registerSection({ id: 'main', labelKey: null, order: 0 });
registerSection({ id: 'patients', labelKey: 'nav.sections.patients', order: 10 });
registerSection({ id: 'prescriptions', labelKey: 'nav.sections.prescriptions', order: 20 });
registerSection({ id: 'reports', labelKey: 'nav.sections.reports', order: 30 });
registerSection({ id: 'keys', labelKey: 'nav.sections.keys', order: 40 });
registerSection({ id: 'admin', labelKey: 'nav.sections.admin', order: 90 });
registerSection({ id: 'account', labelKey: 'nav.sections.account', order: 95 });

import './login.js';
import './home.js';
import './password.js';
import './admin-users.js';
import './admin-roles.js';
import './admin-refs.js';
import './admin-audit.js';
import './keys.js';
import './patients.js';
import './prescriptions.js';
import './reports.js';
