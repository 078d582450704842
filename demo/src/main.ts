import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache } from '@apollo/client';
import { SetContextLink } from '@apollo/client/link/context';
import { StartVerificationDocument, type StartVerificationMutation } from '../../src/generated/operations';
import { describeFailure, formatRemaining, type ErrorExtensions } from './messages';
import './style.css';

type Handoff = StartVerificationMutation['startVerification'];

/**
 * The bearer token. The demo asks the gateway for its development token (served next to this
 * page, in development only); an app uses its signed-in user's token here instead.
 */
async function userToken(): Promise<string | null> {
  const response = await fetch('config.json', { cache: 'no-store' });
  if (!response.ok) return null;
  const { token } = (await response.json()) as { token: string | null };
  return token;
}

const client = new ApolloClient({
  link: ApolloLink.from([
    // Per request, so a refreshed token is picked up.
    new SetContextLink(async ({ headers }) => {
      const token = await userToken();
      return { headers: token ? { ...headers, authorization: `Bearer ${token}` } : headers };
    }),
    new HttpLink({ uri: '/graphql' }),
  ]),
  cache: new InMemoryCache(),
});

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  start: element<HTMLButtonElement>('start'),
  status: element('status'),
  error: element('error'),
  errorTitle: element('error-title'),
  errorDetail: element('error-detail'),
  errorCode: element('error-code'),
  handoff: element('handoff'),
  qr: element<HTMLImageElement>('qr'),
  captureLink: element<HTMLAnchorElement>('capture-link'),
  sessionId: element('session-id'),
  countdown: element('countdown'),
  expired: element('expired'),
};

let countdownTimer: ReturnType<typeof setInterval> | undefined;

ui.start.addEventListener('click', () => void startVerification());

async function startVerification(): Promise<void> {
  clearInterval(countdownTimer);
  ui.start.disabled = true;
  ui.status.textContent = 'Starting…';
  ui.error.hidden = ui.handoff.hidden = ui.expired.hidden = true;
  try {
    // no-cache: the handoff holds a live credential, so it is not kept in Apollo's cache.
    const { data } = await client.mutate({ mutation: StartVerificationDocument, fetchPolicy: 'no-cache' });
    if (!data) throw new Error('empty answer');
    showHandoff(data.startVerification);
    ui.status.textContent = '';
  } catch (error) {
    showFailure(error);
    ui.status.textContent = '';
  } finally {
    ui.start.disabled = false;
  }
}

function showHandoff(handoff: Handoff): void {
  // As an image, not inserted markup: an <img> never runs anything inside the SVG.
  ui.qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(handoff.qrCodeSvg)}`;
  ui.captureLink.href = handoff.captureUrl;
  ui.sessionId.textContent = handoff.sessionId;
  ui.handoff.hidden = false;

  const expiresAt = Date.parse(handoff.expiresAt);
  const tick = () => {
    const remaining = expiresAt - Date.now();
    ui.countdown.textContent = formatRemaining(remaining);
    if (remaining <= 0) {
      clearInterval(countdownTimer);
      ui.handoff.hidden = true;
      ui.expired.hidden = false;
    }
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function showFailure(error: unknown): void {
  const extensions: ErrorExtensions = CombinedGraphQLErrors.is(error) ? (error.errors[0]?.extensions ?? {}) : null;
  const message = describeFailure(extensions);
  ui.errorTitle.textContent = message.title;
  ui.errorDetail.textContent = message.detail;
  ui.errorCode.textContent = message.code;
  ui.error.hidden = false;
}
