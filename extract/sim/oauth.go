package sim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// User types of OAuth grants.
const (
	UserLocation = "Location"
	UserCompany  = "Company"
)

// OAuth error descriptions, kept verbatim.
const (
	DescRefreshInvalid = "refresh token is invalid or was already used"
	DescCodeInvalid    = "authorization code is invalid or was already used"
	DescClient         = "client authentication failed"
)

// grant is what a token or code grants.
type grant struct {
	userType   string
	locationID string
	companyID  string
	scopes     []string
}

func (g *grant) bucket() string {
	if g.locationID != "" {
		return g.locationID
	}
	return "company:" + g.companyID
}

type accessTok struct {
	grant
	expires time.Time // zero: never (static tokens)
	revoked bool
}

type refreshTok struct {
	grant
	used, revoked bool
	access        []string // access tokens issued with it
	usedAt        time.Time
	next          string // the refresh token issued when it was used
}

type authCode struct {
	grant
	redirectURI string
	used        bool
}

type authStore struct {
	mu      sync.Mutex
	access  map[string]*accessTok
	refresh map[string]*refreshTok
	codes   map[string]*authCode
	// installs is the grant of the last authorization-code grant per bucket
	// (location id, or "company:"+id): what /oauth/reconnect re-issues.
	installs map[string]grant
}

func (a *authStore) init() {
	a.access, a.refresh, a.codes = map[string]*accessTok{}, map[string]*refreshTok{}, map[string]*authCode{}
	a.installs = map[string]grant{}
}

func randToken(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// AuthorizeCode mints an authorization code for a location, redeemable
// once at POST /oauth/token (user_type Location). The granted scopes are
// the ones given here.
func (s *Server) AuthorizeCode(locationID string, scopes ...string) string {
	return s.mintCode(grant{userType: UserLocation, locationID: locationID, companyID: s.cfg.CompanyID, scopes: scopes}, "")
}

// AuthorizeCompanyCode mints an authorization code for an agency (Company)
// token, whose access tokens can be exchanged at /oauth/locationToken.
func (s *Server) AuthorizeCompanyCode(scopes ...string) string {
	return s.mintCode(grant{userType: UserCompany, companyID: s.cfg.CompanyID, scopes: scopes}, "")
}

func (s *Server) mintCode(g grant, redirect string) string {
	c := randToken("code-")
	s.auth.mu.Lock()
	s.auth.codes[c] = &authCode{grant: g, redirectURI: redirect}
	s.auth.mu.Unlock()
	return c
}

// authenticate resolves the bearer token of r; on failure it returns the
// 401 message.
func (s *Server) authenticate(r *http.Request) (*grant, string) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, MsgInvalidJWT
	}
	if st, ok := s.cfg.StaticTokens[tok]; ok {
		return &grant{userType: UserLocation, locationID: st.LocationID, companyID: s.cfg.CompanyID, scopes: st.Scopes}, ""
	}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	at := s.auth.access[tok]
	// Unknown, revoked and expired tokens alike: the real API does not say
	// "expired".
	if at == nil || at.revoked || !s.cfg.Now().Before(at.expires) {
		return nil, MsgInvalidJWT
	}
	g := at.grant
	return &g, ""
}

// issue mints an access token and a refresh token for g. Call with
// s.auth.mu held.
func (s *Server) issue(g grant) api.TokenResponse {
	at, rt := randToken(""), randToken("")
	s.auth.access[at] = &accessTok{grant: g, expires: s.cfg.Now().Add(s.cfg.AccessTTL)}
	s.auth.refresh[rt] = &refreshTok{grant: g, access: []string{at}}
	return api.TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL / time.Second),
		RefreshToken: rt, Scope: strings.Join(g.scopes, " "), UserType: g.userType, LocationID: g.locationID, CompanyID: g.companyID}
}

type oauthHandler func(r *http.Request, form url.Values) reply

// oauth wraps the OAuth endpoints: stats, form parsing, and faults on
// /oauth/token when cfg.Faults.Token is set. No rate limit applies.
func (s *Server) oauth(kind string, h oauthHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.stats.update(func(st *Stats) { st.Requests++; st.ByKind[kind]++ })
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		form, err := url.ParseQuery(string(body))
		if err != nil {
			s.send(w, r, s.oauthErr(http.StatusBadRequest, "invalid_request", "malformed form body"), nil, plan{})
			return
		}
		var p plan
		if kind == "token" && s.cfg.Faults.Token {
			p = s.decide(r.Method+" "+r.URL.Path+"\n"+string(body), "oauth")
		}
		var rp reply
		switch p.kind {
		case Fault429:
			rp = s.tooMany(time.Second)
		case Fault5xx:
			rp = s.serverError(p)
		default:
			rp = h(r, form)
		}
		s.send(w, r, rp, nil, p)
	}
}

func (s *Server) oauthErr(status int, code, desc string) reply {
	return jsonReply(status, marshal(map[string]string{"error": code, "error_description": desc, "traceId": s.traceID()}))
}

// clientOK checks client credentials from HTTP Basic or the form.
func (s *Server) clientOK(r *http.Request, form url.Values) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	return subtle.ConstantTimeCompare([]byte(id), []byte(s.cfg.ClientID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) == 1
}

// token serves POST /oauth/token.
func (s *Server) token(r *http.Request, form url.Values) reply {
	if !s.clientOK(r, form) {
		return s.oauthErr(http.StatusUnauthorized, "invalid_client", DescClient)
	}
	ut := form.Get("user_type")
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	switch form.Get("grant_type") {
	case "authorization_code":
		c := a.codes[form.Get("code")]
		if c == nil || c.used || (c.redirectURI != "" && form.Get("redirect_uri") != c.redirectURI) {
			return s.oauthErr(http.StatusBadRequest, "invalid_grant", DescCodeInvalid)
		}
		if ut != "" && ut != c.userType {
			return s.oauthErr(http.StatusBadRequest, "invalid_grant", "user_type does not match the authorization")
		}
		c.used = true
		a.installs[c.bucket()] = c.grant
		s.stats.update(func(st *Stats) { st.CodeGrants++ })
		return jsonReply(http.StatusOK, marshal(s.issue(c.grant)))
	case "refresh_token":
		rt := a.refresh[form.Get("refresh_token")]
		if rt == nil || rt.revoked {
			return s.oauthErr(http.StatusBadRequest, "invalid_grant", DescRefreshInvalid)
		}
		if rt.used {
			// RefreshGrace: a replay soon after use, while the successor is
			// unused, retires the successor and issues a new pair.
			nx := a.refresh[rt.next]
			if s.cfg.RefreshGrace <= 0 || nx == nil || nx.used || !s.cfg.Now().Before(rt.usedAt.Add(s.cfg.RefreshGrace)) {
				return s.oauthErr(http.StatusBadRequest, "invalid_grant", DescRefreshInvalid)
			}
			nx.revoked = true
			for _, at := range nx.access {
				if x := a.access[at]; x != nil {
					x.revoked = true
				}
			}
			s.stats.update(func(st *Stats) { st.GraceReplays++ })
		}
		rt.used, rt.usedAt = true, s.cfg.Now()
		s.stats.update(func(st *Stats) { st.Refreshes++ })
		tr := s.issue(rt.grant)
		rt.next = tr.RefreshToken
		return jsonReply(http.StatusOK, marshal(tr))
	default:
		return s.oauthErr(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

// authorize serves GET /oauth/authorize: it approves at once and redirects
// to redirect_uri with a code and the state.
func (s *Server) authorize(r *http.Request, _ url.Values) reply {
	q := r.URL.Query()
	if q.Get("client_id") != s.cfg.ClientID {
		return s.oauthErr(http.StatusBadRequest, "invalid_client", "unknown client_id")
	}
	if q.Get("response_type") != "code" {
		return s.oauthErr(http.StatusBadRequest, "unsupported_response_type", "response_type must be code")
	}
	ru, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("redirect_uri") == "" {
		return s.oauthErr(http.StatusBadRequest, "invalid_request", "redirect_uri is required")
	}
	g := grant{userType: UserLocation, companyID: s.cfg.CompanyID, scopes: strings.Fields(q.Get("scope")), locationID: q.Get("location_id")}
	if q.Get("user_type") == UserCompany {
		g.userType, g.locationID = UserCompany, ""
	} else if g.locationID == "" {
		g.locationID = s.locs[0].id
	}
	code := s.mintCode(g, q.Get("redirect_uri"))
	v := ru.Query()
	v.Set("code", code)
	if st := q.Get("state"); st != "" {
		v.Set("state", st)
	}
	ru.RawQuery = v.Encode()
	return reply{status: http.StatusFound, header: http.Header{"Location": {ru.String()}}}
}

// revoke serves POST /oauth/revoke (RFC 7009): a refresh token is revoked
// with the access tokens issued with it; an access token alone. Unknown
// tokens are not an error.
func (s *Server) revoke(r *http.Request, form url.Values) reply {
	if !s.clientOK(r, form) {
		return s.oauthErr(http.StatusUnauthorized, "invalid_client", DescClient)
	}
	t := form.Get("token")
	a := &s.auth
	a.mu.Lock()
	if rt := a.refresh[t]; rt != nil {
		rt.revoked = true
		for _, at := range rt.access {
			if x := a.access[at]; x != nil {
				x.revoked = true
			}
		}
	}
	if at := a.access[t]; at != nil {
		at.revoked = true
	}
	a.mu.Unlock()
	return jsonReply(http.StatusOK, []byte("{}"))
}

// locationToken serves POST /oauth/locationToken: a Company access token
// (bearer) is exchanged for a token of one of its locations.
func (s *Server) locationToken(r *http.Request, form url.Values) reply {
	g, msg := s.authenticate(r)
	if g == nil {
		return s.errReply(http.StatusUnauthorized, msg)
	}
	loc := form.Get("locationId")
	if form.Get("companyId") == "" || loc == "" {
		return s.errReply(http.StatusUnprocessableEntity, []string{"companyId and locationId should not be empty"})
	}
	if g.userType != UserCompany || form.Get("companyId") != g.companyID || s.location(loc) == nil {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	ng := grant{userType: UserLocation, locationID: loc, companyID: g.companyID, scopes: g.scopes}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return jsonReply(http.StatusOK, marshal(s.issue(ng)))
}

// Messages of POST /oauth/reconnect.
const (
	MsgReconnectClient    = "Invalid client credentials"
	MsgReconnectNotInstal = "The app is not installed on this location or company"
)

// reconnect serves POST /oauth/reconnect (JSON {"clientKey", "clientSecret",
// "locationId" | "companyId"}): for an app installed on that location or
// company it invalidates every refresh and access token of it (the chain
// whose newest pair the client lost) and answers {"authorizationCode",
// "expiresAt", "traceId"}, a code for the authorization-code grant.
func (s *Server) reconnect(w http.ResponseWriter, r *http.Request) {
	s.stats.update(func(st *Stats) { st.Requests++; st.ByKind["reconnect"]++ })
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var req struct {
		ClientKey    string `json:"clientKey"`
		ClientSecret string `json:"clientSecret"`
		LocationID   string `json:"locationId"`
		CompanyID    string `json:"companyId"`
	}
	if json.Unmarshal(body, &req) != nil || (req.LocationID == "") == (req.CompanyID == "") {
		s.send(w, r, s.errReply(http.StatusUnprocessableEntity, []string{"clientKey, clientSecret and one of locationId or companyId are required"}), nil, plan{})
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.ClientKey), []byte(s.cfg.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(req.ClientSecret), []byte(s.cfg.ClientSecret)) != 1 {
		s.send(w, r, s.errReply(http.StatusUnauthorized, MsgReconnectClient), nil, plan{})
		return
	}
	bucket := req.LocationID
	if bucket == "" {
		bucket = "company:" + req.CompanyID
	}
	a := &s.auth
	a.mu.Lock()
	g, ok := a.installs[bucket]
	if !ok {
		a.mu.Unlock()
		s.send(w, r, s.errReply(http.StatusBadRequest, MsgReconnectNotInstal), nil, plan{})
		return
	}
	s.revokeBucket(bucket)
	a.mu.Unlock()
	code := s.mintCode(g, "")
	s.stats.update(func(st *Stats) { st.Reconnects++ })
	s.send(w, r, jsonReply(http.StatusOK, marshal(map[string]string{
		"authorizationCode": code, "expiresAt": s.cfg.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339), "traceId": s.traceID()})), nil, plan{})
}

// revokeBucket revokes every refresh and access token of a bucket. Call
// with s.auth.mu held.
func (s *Server) revokeBucket(bucket string) {
	for _, rt := range s.auth.refresh {
		if rt.bucket() == bucket {
			rt.revoked = true
		}
	}
	for _, at := range s.auth.access {
		if at.bucket() == bucket {
			at.revoked = true
		}
	}
}

// InvalidateAccessTokens makes the server refuse every access token issued
// so far for a location (401 Invalid JWT), as the real API does when it
// rotates its signing keys; refresh tokens keep working. It returns how many
// live tokens it invalidated.
func (s *Server) InvalidateAccessTokens(locationID string) int {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	n := 0
	for _, at := range s.auth.access {
		if at.locationID == locationID && at.userType == UserLocation && !at.revoked {
			at.revoked = true
			n++
		}
	}
	return n
}
