// The page's shared state: what the room looks like to this tab right now.

export const HIDE_SYSTEM_KEY = "agentgather.hideSystem";
export const MAX_ROWS = 2000; // rows kept in the DOM; the export has the full log
export const WAIT_ABORT_MS = 40000; // a held /wait answers within 25 s; longer means a dead link
export const STATUS_EVERY_MS = 5000;

export const state = {
  me: null, // alias
  profile: null,
  status: null,
  roster: new Map(), // alias -> participant
  isHost: false,
  room: "",
  closed: false,
  cursor: 0,
  openedAt: 0, // the cursor after the first page: what was in the room on arrival
  readFrom: 0, // this participant's read_through_id on arrival
  oldestId: 0, // the oldest message loaded; older pages are read before it
  hasMoreBefore: false,
  byId: new Map(), // id -> message (all loaded)
  rendered: new Map(), // id -> row element
  pending: new Map(), // client_msg_id -> {item, el}
  brief: null,
  briefSeenKey: "",
  replyTo: null,
  stopped: false,
  connOk: true,
  unread: 0,
  expiresAt: null,
  hasChat: false,
  tabs: null, // BroadcastChannel shared by this participant's tabs
  leader: false, // this tab holds the participant's /wait
  liveStarted: false, // the /wait loop (this tab's or its leader's) has started
};
