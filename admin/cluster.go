package admin

import (
	"context"
	"net/http"
)

// ClusterBackend is the optional part of a Backend that runs as a member
// of a Vigil cluster (cluster.enabled): POST /api/v1/cluster/reload asks
// every member to reload.
type ClusterBackend interface {
	// ReloadMembers asks every live member, this one included, to re-read
	// and apply its config, and returns a JSON-encodable report of each
	// member's outcome; all says whether every member reloaded. A backend
	// that is not a cluster member returns a ClientError saying so.
	ReloadMembers(ctx context.Context) (report any, all bool, err error)
}

func (s *Server) clusterRoutes() []route {
	if s.cluster == nil {
		return nil
	}
	return []route{
		{method: http.MethodPost, path: "/api/v1/cluster/reload", access: accessScope, scope: ScopeWrite, action: "cluster.reload", success: http.StatusOK, handler: s.handleClusterReload},
	}
}

// handleClusterReload answers 200 when every member reloaded, and 502 with
// the same report when one failed or did not answer.
func (s *Server) handleClusterReload(w http.ResponseWriter, r *http.Request) {
	report, all, err := s.cluster.ReloadMembers(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "cluster reload", err)
		return
	}
	status := http.StatusOK
	if !all {
		status = http.StatusBadGateway
	}
	s.writeJSON(w, r, status, report)
}
