import type { DesiredApp } from '../../core/model.js';
import { hashOf } from './objects.js';

/**
 * What needs new objects on the cluster when it changes: the app's spec (without where it is declared) in its
 * namespace. Pure and free of the Kubernetes client, so the engine can plan before the client is loaded.
 */
export function kubernetesTemplateOf(app: DesiredApp, namespace: string): string {
  const { source: _s, env: _e, dependsOn: _d, ...rest } = app;
  return hashOf({ ...rest, namespace });
}
