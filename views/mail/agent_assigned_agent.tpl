Subject: [#{{TICKET}}] Assigned to you: {{SUBJECT}}

Hello,

Ticket #{{TICKET}}, "{{SUBJECT}}" from {{CUSTOMER}}, is now yours.

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
